"""The same state/event layer as JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from gzsb.accounts.session import current_account, login_required
from gzsb.bootstrap import engine
from gzsb.enrollment.views import current_actor, flow_of, own_application, refuse_own_route_event, stage_rows
from gzsb.errors import Forbidden, InvalidInput, NotFound
from gzsb.extensions import db
from gzsb.models import Application

bp = Blueprint("api", __name__, url_prefix="/api")


def describe(app: Application) -> dict[str, Any]:
    flow = flow_of(app)
    state = flow.states[app.state]
    return {
        "application": app.uid,
        "state": app.state,
        "label": state.label,
        "page": state.page,
        "final": state.final,
        "version": app.version,
        "stages": [
            {"key": r["stage"].key, "label": r["stage"].label, "status": r["status"]} for r in stage_rows(app, flow)
        ],
        "events": [asdict(o) for o in engine().options(app, current_actor())],
    }


def _json_body() -> tuple[dict[str, Any], int | None]:
    body = request.get_json(silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidInput("body is not a JSON object", {"_schema": ["请求内容应为JSON对象"]})
    version = body.pop("version", None)
    payload = body.pop("payload", body)
    if not isinstance(payload, dict):
        raise InvalidInput("payload is not a JSON object", {"_schema": ["请求内容应为JSON对象"]})
    return payload, version if isinstance(version, int) else None


@bp.get("/application")
@login_required("student")
def application() -> Any:
    return jsonify(describe(own_application()))


@bp.post("/application/events/<event>")
@login_required("student")
def fire(event: str) -> Any:
    app = own_application()
    refuse_own_route_event(app, event)
    payload, version = _json_body()
    engine().fire(app.id, event, current_actor(), payload, expected_version=version)
    return jsonify(describe(db.session.get(Application, app.id)))


@bp.post("/applications/<uid>/events/<event>")
@login_required("staff", "admin")
def fire_as_staff(uid: str, event: str) -> Any:
    """Staff decisions; staff reach only their own confirmation point's applicants."""
    account = current_account()
    assert account is not None
    app = db.session.scalars(select(Application).where(Application.uid == uid)).first()
    if app is None:
        raise NotFound(f"application {uid} does not exist")
    if account.role == "staff" and app.confirmation_point_id != account.confirmation_point_id:
        raise Forbidden(f"staff {account.id} may not act on application {uid} of another confirmation point")
    payload, version = _json_body()
    fired = engine().fire(app.id, event, current_actor(), payload, expected_version=version)
    return jsonify(asdict(fired))

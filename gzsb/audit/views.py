"""The auditor console (/audit): fleet view, verify runs, find an application, its timeline,
flow diagram, verify, what-if replay and export.

Auditors only (not admins: the people who change and publish the flow should not be the
ones who check its history). Thin on purpose: every backend call goes through
``gzsb.audit.console`` (fleet, runs, verify, bundle) and ``gzsb.audit.dossier`` (one
application's pages). Applications are found with a POST, so ID numbers never end up in
URLs, server logs or browser history; pages show personal data masked.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request, url_for

from gzsb.accounts.session import current_account, login_required
from gzsb.audit import console, dossier
from gzsb.bootstrap import vault
from gzsb.common.beijing import BEIJING, as_utc
from gzsb.errors import InvalidInput, NotFound
from gzsb.extensions import db
from gzsb.models import Account

log = logging.getLogger(__name__)
bp = Blueprint("audit", __name__, url_prefix="/audit")

ROLE = "auditor"
# The diagram is drawn by graphviz from our own flow data; even so it is served as an
# image (scripts in an <img> never run) and with a policy that forbids them outright.
SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _me() -> Account:
    account = current_account()
    assert account is not None  # guarded by login_required
    return account


def _now() -> datetime:
    return as_utc(current_app.extensions["gzsb.clock"]())


@bp.app_template_filter("bj_seconds")
def bj_seconds(value: datetime | None) -> str:
    return as_utc(value).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") if value else ""


@bp.app_template_filter("audit_problem")
def audit_problem(problem: str) -> str:
    return console.problem_zh(problem)


# ------------------------------------------------------------------------------ fleet


def _home(*, query_error: str = "", status: int = 200) -> Any:
    fleet = console.fleet(db.session)
    return (
        render_template(
            "audit/home.html",
            fleet=fleet,
            runs=console.runs(db.session, fleet.applications),
            running=console.running(db.session, _now()) is not None,
            query_error=query_error,
        ),
        status,
    )


@bp.get("/")
@login_required(ROLE)
def home() -> Any:
    return _home()


@bp.post("/verify")
@login_required(ROLE)
def verify_fleet() -> Any:
    """Verify every application and the log; the run is stored (AuditRun), large fleets in the background."""
    fleet = console.fleet(db.session)
    check, started = console.start_run(db.session, _now())
    if started and fleet.events <= console.INLINE_EVENTS:
        console.run_verify(check)
    elif started:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        assert check.run is not None
        threading.Thread(
            target=_verify_in_background, args=(app, check.run.id), name=f"audit-verify-{check.run.id}", daemon=True
        ).start()
    log.info("auditor %d started a verify run (started: %s)", _me().id, started)
    current = check.run or console.running(db.session, _now())
    return redirect(url_for("audit.home", _anchor=f"run-{current.id}" if current else "runs"))


def _verify_in_background(app: Flask, run_id: int) -> None:
    with app.app_context():
        try:
            console.run_verify(console.resume_run(db.session, run_id))
        except Exception:  # logged and stored by run_verify; the page shows the run as broken off
            pass
        finally:
            db.session.remove()


@bp.post("/checkpoint")
@login_required(ROLE)
def checkpoint_now() -> Any:
    """Integrate the not-yet-logged events and sign a checkpoint now (as the worker does every few minutes)."""
    view = console.checkpoint_now(db.session)
    log.info("auditor %d made checkpoint %d (size %d)", _me().id, view.id, view.size)
    return redirect(url_for("audit.home", _anchor="checkpoint"))


@bp.post("/find")
@login_required(ROLE)
def find() -> Any:
    text = request.form.get("q", "")[: console.QUERY_MAX * 4]
    try:
        uid = dossier.find_application(db.session, vault(), text, _now().astimezone(BEIJING).date())
    except InvalidInput as exc:
        return _home(query_error="；".join(exc.fields.get("q", [])), status=422)
    except NotFound as exc:
        return _home(query_error=exc.public_message, status=404)
    log.info("auditor %d found application %s", _me().id, uid)
    return redirect(url_for("audit.application", uid=uid))


# ------------------------------------------------------------------------ application


def _application(uid: str, **extra: Any) -> Any:
    found = dossier.dossier(db.session, vault(), uid)
    return render_template(
        "audit/application.html",
        d=found,
        versions=[v for v in dossier.versions(db.session) if v.id != found.flow_version_id],
        **extra,
    )


@bp.get("/applications/<uid>")
@login_required(ROLE)
def application(uid: str) -> Any:
    log.info("auditor %d opened application %s", _me().id, uid[:32])
    return _application(uid)


@bp.post("/applications/<uid>/verify")
@login_required(ROLE)
def verify_application(uid: str) -> Any:
    result = console.verify_application(db.session, uid[:32])
    log.info(
        "auditor %d verified application %s: %s, %d log problem(s)",
        _me().id, uid[:32], result.verdict.describe(), len(result.problems),
    )  # fmt: skip
    return _application(uid, check=result, verdict=result.verdict)


@bp.get("/applications/<uid>/whatif")
@login_required(ROLE)
def what_if(uid: str) -> Any:
    version = request.args.get("version", type=int)
    if version is None:
        raise NotFound("no flow version chosen for what-if", public="请选择要对比的流程版本")
    result = dossier.what_if(db.session, uid, version)
    return _application(uid, whatif=result, whatif_counts=dossier.whatif_summary(result))


@bp.get("/applications/<uid>/flow.svg")
@login_required(ROLE)
def flow_svg(uid: str) -> Any:
    response = Response(dossier.flow_svg(db.session, uid), mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = SVG_POLICY
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/applications/<uid>/export")
@login_required(ROLE)
def export(uid: str) -> Any:
    filename, data = console.export(db.session, uid)
    log.info("auditor %d exported application %s", _me().id, uid[:32])
    response = Response(data, mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response

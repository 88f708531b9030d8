"""The admin's flow workbench (/admin/flows): versions and the funnel, the YAML editor with
live validation, diagram, diff and impact report, and propose / approve / publish / migrate.

Thin: flows are checked by the workflow package and every change goes through
``gzsb.admin.flows`` (the flow-version service), which records it; this module only reads
requests, calls, commits and renders. The editor's JSON API lives under ``api/`` and takes
the YAML as ``{"yaml": "..."}`` with the CSRF token in the ``X-CSRFToken`` header.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from functools import cache
from typing import Any

from flask import Blueprint, Response, current_app, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select

from gzsb.accounts.views import current_account, login_required
from gzsb.admin.service import Operator
from gzsb.bootstrap import engine, registries
from gzsb.common.beijing import as_utc
from gzsb.errors import FlowError, InvalidInput, ServiceError
from gzsb.extensions import db
from gzsb.models import Application, FlowVersion
from gzsb.store import FLOWS
from gzsb.workflow.diff import diff_flows
from gzsb.workflow.graph import render_svg
from gzsb.workflow.loader import load_flow
from gzsb.workflow.registry import FlowRegistries
from gzsb.workflow.spec import FlowSpec
from gzsb.workflow.validate import validate_with
from gzsb.workflow.yamlpos import Located, locate

log = logging.getLogger(__name__)
bp = Blueprint("admin_flows", __name__, url_prefix="/admin/flows")

# A flow is a few KiB; anything near this is a mistake or an attack, refused before parsing.
MAX_FLOW_BYTES = 256 * 1024
MAX_NOTE = 500
EDITOR_SOURCE = "editor"


class FlowTooLarge(InvalidInput):
    http_status = 413
    code = "too_large"
    public_message = "流程文件过大（最多 256 KiB）"


# ------------------------------------------------------------------------------ helpers


def _now() -> datetime:
    return as_utc(current_app.extensions["gzsb.clock"]())


def _me() -> Operator:
    account = current_account()
    assert account is not None  # guarded by login_required
    return Operator.of(account)


@cache
def _registries_for(sms: tuple[str, ...]) -> FlowRegistries:
    return registries({"SMS_TEMPLATES": dict.fromkeys(sms)})


def _registries() -> FlowRegistries:
    return _registries_for(tuple(sorted(current_app.config["SMS_TEMPLATES"])))


def _flow_name() -> str:
    return str(current_app.config["FLOW_NAME"])


def live_version() -> tuple[FlowVersion, FlowSpec]:
    row = FLOWS.current(db.session, _flow_name())
    return row, FLOWS.by_version(db.session, row.id)


def state_counts() -> dict[str, int]:
    """Applications in each state right now, whatever their version (one GROUP BY)."""
    rows = db.session.execute(select(Application.state, func.count()).group_by(Application.state))
    return {state: int(n) for state, n in rows}


def svg_text(svg: bytes) -> str:
    """Graphviz's SVG without its XML prologue, for a JSON answer."""
    text = svg.decode("utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def _clean_yaml(raw: Any) -> str:
    if not isinstance(raw, str):
        raise InvalidInput("yaml missing", {"yaml": ["请提交流程文件内容"]})
    if len(raw.encode("utf-8")) > MAX_FLOW_BYTES:
        raise FlowTooLarge("flow text over the cap", fields={"yaml": [FlowTooLarge.public_message]})
    if "\x00" in raw:
        raise InvalidInput("NUL in flow text", {"yaml": ["流程文件含有不可见的控制字符"]})
    # Browsers send CRLF from a textarea; the published text keeps plain newlines.
    return raw.replace("\r\n", "\n").replace("\r", "\n")


def _capped_body() -> None:
    length = request.content_length
    if length is not None and length > MAX_FLOW_BYTES + 4096:
        raise FlowTooLarge("request body over the cap", fields={"yaml": [FlowTooLarge.public_message]})
    request.max_content_length = MAX_FLOW_BYTES + 4096  # also caps a chunked body


def api_yaml() -> str:
    _capped_body()
    body = request.get_json(silent=True)
    return _clean_yaml(body.get("yaml") if isinstance(body, dict) else None)


def form_yaml() -> str:
    _capped_body()
    return _clean_yaml(request.form.get("yaml"))


def check(text: str) -> tuple[FlowSpec | None, list[Located]]:
    """Load and validate ``text``: the flow when it has no problems, and every problem at its line."""
    try:
        flow = load_flow(text, EDITOR_SOURCE)
    except FlowError as exc:
        return None, locate(text, exc.problems, EDITOR_SOURCE)
    problems = validate_with(flow, _registries())
    if problems:
        return None, locate(text, problems, EDITOR_SOURCE)
    return flow, []


def _note() -> str:
    note = " ".join(request.form.get("note", "").split())
    if len(note) > MAX_NOTE:
        raise InvalidInput("note too long", {"note": [f"说明最多{MAX_NOTE}个字"]})
    return note


def _mapping(states: list[str]) -> dict[str, str]:
    """``map_<state>`` selects of the migration form → {old state: new state}."""
    mapping = {}
    for state in states:
        target = request.form.get(f"map_{state}", "")
        if target:
            mapping[state] = target
    return mapping


@bp.app_template_filter("flow_value")
def flow_value(value: Any) -> str:
    """A diff value (plain JSON) as an admin reads it; Jinja escapes the result."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# ------------------------------------------------------------------------------ pages


@bp.get("/")
@login_required("admin")
def index() -> Any:
    row, flow = live_version()
    counts = state_counts()
    stuck = sorted(
        ((name, counts.get(name, 0)) for name, state in flow.states.items() if not state.final),
        key=lambda item: -item[1],
    )
    return render_template(
        "admin/flows/index.html",
        live=row,
        flow=flow,
        versions=_versions(),
        proposals=_open_proposals(),
        counts=counts,
        stuck=stuck,
        total=sum(counts.values()),
    )


@bp.get("/live.svg")
@login_required("admin")
def funnel_svg() -> Any:
    _, flow = live_version()
    response = Response(render_svg(flow, counts=state_counts()), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    return response


@bp.get("/edit")
@login_required("admin")
def editor() -> Any:
    row, flow = live_version()
    return render_template("admin/flows/editor.html", live=row, text=flow.text, max_bytes=MAX_FLOW_BYTES)


# ------------------------------------------------------------------------------ editor API


@bp.post("/api/validate")
@login_required("admin")
def api_validate() -> Any:
    text = api_yaml()
    flow, problems = check(text)
    answer: dict[str, Any] = {"ok": flow is not None, "problems": [p.to_dict() for p in problems], "svg": None}
    if flow is not None:
        answer["svg"] = svg_text(render_svg(flow))
        answer["sha256"] = flow.sha256
    return jsonify(answer)


@bp.post("/api/diff")
@login_required("admin")
def api_diff() -> Any:
    text = api_yaml()
    flow, problems = check(text)
    if flow is None:
        return jsonify({"ok": False, "problems": [p.to_dict() for p in problems]})
    _, live = live_version()
    diff = diff_flows(live, flow)
    html = render_template("admin/flows/_diff.html", diff=diff.to_dict())
    return jsonify({"ok": True, "diff": diff.to_dict(), "html": html})


@bp.post("/api/impact")
@login_required("admin")
def api_impact() -> Any:
    text = api_yaml()
    flow, problems = check(text)
    if flow is None:
        return jsonify({"ok": False, "problems": [p.to_dict() for p in problems]})
    report = _impact(flow)
    html = render_template("admin/flows/_impact.html", report=report)
    return jsonify({"ok": True, "report": report, "html": html})


# ------------------------------------------------------------------------------ proposals


@bp.post("/propose")
@login_required("admin")
def propose() -> Any:
    text = form_yaml()
    note = _note()
    flow, problems = check(text)
    if flow is None:
        # A bad YAML never reaches a proposal: back to the editor with every problem listed.
        row, _ = live_version()
        page = render_template(
            "admin/flows/editor.html", live=row, text=text, max_bytes=MAX_FLOW_BYTES, problems=problems, note=note
        )
        return page, 422
    if not note:
        row, _ = live_version()
        page = render_template(
            "admin/flows/editor.html", live=row, text=text, max_bytes=MAX_FLOW_BYTES, note_error="请填写修改说明"
        )
        return page, 422
    proposal = _service().propose(db.session, _me(), _now(), text, note=note, registries=_registries())
    db.session.commit()
    flash("已提交发布申请，等待另一位管理员批准")
    return redirect(url_for("admin_flows.proposal", proposal_id=proposal.id))


@bp.get("/proposals/<int:proposal_id>")
@login_required("admin")
def proposal(proposal_id: int) -> Any:
    found = _service().get_proposal(db.session, proposal_id)
    _, live = live_version()
    candidate = load_flow(found.yaml_text, f"proposal {found.id}")
    stranded = [s for s in live.states if s not in candidate.states]
    me = _me()
    return render_template(
        "admin/flows/proposal.html",
        proposal=found,
        own=found.proposed_by == me.label,
        stranded=stranded,
        states=list(candidate.states),
        diff=found.diff or diff_flows(live, candidate).to_dict(),
        report=found.impact or None,
    )


@bp.post("/proposals/<int:proposal_id>/approve")
@login_required("admin")
def approve(proposal_id: int) -> Any:
    service = _service()
    found = service.get_proposal(db.session, proposal_id)
    candidate = load_flow(found.yaml_text, f"proposal {found.id}")
    _, live = live_version()
    migrate = request.form.get("migrate") == "1"
    mapping = _mapping([s for s in live.states if s not in candidate.states]) if migrate else {}
    try:
        service.approve(db.session, _me(), _now(), found, migrate=migrate, mapping=mapping, engine=engine())
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.public_message)
        return redirect(url_for("admin_flows.proposal", proposal_id=proposal_id))
    db.session.commit()
    flash("已批准并发布")
    return redirect(url_for("admin_flows.index"))


@bp.post("/proposals/<int:proposal_id>/reject")
@login_required("admin")
def reject(proposal_id: int) -> Any:
    service = _service()
    found = service.get_proposal(db.session, proposal_id)
    reason = " ".join(request.form.get("reason", "").split())[:MAX_NOTE]
    try:
        service.reject(db.session, _me(), _now(), found, reason=reason)
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.public_message)
        return redirect(url_for("admin_flows.proposal", proposal_id=proposal_id))
    db.session.commit()
    flash("已驳回该发布申请")
    return redirect(url_for("admin_flows.index"))


# ------------------------------------------------------------------------------ service glue
# Everything below calls the flow-version service (gzsb.admin.flows); adapt here only.


def _service() -> Any:
    from gzsb.admin import flows

    return flows


def _versions() -> list[dict[str, Any]]:
    live, _ = live_version()
    per_version = dict(
        db.session.execute(
            select(Application.flow_version_id, func.count()).group_by(Application.flow_version_id)
        ).all()
    )
    rows = db.session.scalars(
        select(FlowVersion).where(FlowVersion.flow == _flow_name()).order_by(FlowVersion.id.desc())
    )
    return [
        {
            "id": r.id,
            "sha256": r.sha256,
            "published_at": r.published_at,
            "published_by": r.published_by,
            "approved_by": "",
            "live": r.id == live.id,
            "applications": int(per_version.get(r.id, 0)),
        }
        for r in rows
    ]


def _open_proposals() -> list[Any]:
    try:
        return list(_service().open_proposals(db.session, _flow_name()))
    except ImportError:
        return []


def _impact(flow: FlowSpec) -> dict[str, Any]:
    report = _service().impact(db.session, flow, now=_now(), flow_name=_flow_name())
    return report.to_dict()

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

from gzsb.accounts.session import current_account, login_required
from gzsb.admin import flow_jobs
from gzsb.admin import flows as flow_admin
from gzsb.admin.flow_job_views import queued
from gzsb.admin.service import Operator
from gzsb.bootstrap import engine, registries
from gzsb.common.beijing import as_utc
from gzsb.errors import FlowError, InvalidInput, ServiceError
from gzsb.extensions import db
from gzsb.models import FlowProposal, FlowVersion
from gzsb.store import FLOWS
from gzsb.worker.tasks import enqueue_flow_job
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
IMPACT_LIST = 50  # applications listed per class (the counts are exact)
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


def state_counts(versions: list[flow_admin.VersionRow]) -> dict[str, int]:
    """Applications in each state right now, over every version (the service counts them
    per version and state in one GROUP BY)."""
    counts: dict[str, int] = {}
    for row in versions:
        for state, n in row.states.items():
            counts[state] = counts.get(state, 0) + n
    return counts


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
    """``map_<state>`` selects of the propose form → {old state: new state} (empty: unmapped)."""
    mapping = {}
    for state in states:
        target = request.form.get(f"map_{state}", "")
        if target:
            mapping[state] = target
    return mapping


def _large(flow_name: str) -> bool:
    return flow_jobs.large(db.session, flow_name, current_app.config["FLOW_JOB_SYNC_MAX"])


def _new_proposal(text: str, flow_name: str, **fields: Any) -> FlowProposal:
    """A proposal; over a large fleet its impact report comes from a worker job, whose
    progress the proposal's page shows."""
    big = _large(flow_name)
    found = flow_admin.propose(db.session, text, by=_me().label, now=_now(), with_impact=not big, **fields)
    if big:
        job = flow_jobs.start_impact(db.session, text, by=_me().label, now=_now(), proposal_id=found.id)
        enqueue_flow_job(job.id)
    return found


def _job_of(proposal_id: int) -> dict[str, Any] | None:
    found = flow_jobs.latest_for(db.session, proposal_id)
    return flow_jobs.status(found) if found is not None else None


def removed_states(live: FlowSpec, candidate: FlowSpec) -> list[str]:
    """States of the live flow the candidate lacks: applications there need a mapping to migrate."""
    return [name for name in live.states if name not in candidate.states]


def _editor_page(text: str, status: int = 200, **extra: Any) -> Any:
    row, _ = live_version()
    page = render_template("admin/flows/editor.html", live=row, text=text, max_bytes=MAX_FLOW_BYTES, **extra)
    return page, status


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


@bp.get("")
@login_required("admin")
def index() -> Any:
    row, flow = live_version()
    versions = flow_admin.versions(db.session, _flow_name())
    counts = state_counts(versions)
    stuck = sorted(
        ((name, counts.get(name, 0)) for name, state in flow.states.items() if not state.final),
        key=lambda item: -item[1],
    )
    return render_template(
        "admin/flows/index.html",
        live=row,
        flow=flow,
        versions=versions,
        proposals=flow_admin.proposals(db.session, status=flow_admin.PROPOSED),
        stuck=stuck,
        total=sum(counts.values()),
    )


@bp.get("/live.svg")
@login_required("admin")
def funnel_svg() -> Any:
    _, flow = live_version()
    counts = state_counts(flow_admin.versions(db.session, _flow_name()))
    response = Response(render_svg(flow, counts=counts), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    # Shown through <img>, which runs nothing; this also covers opening the file directly.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    return response


@bp.get("/edit")
@login_required("admin")
def editor() -> Any:
    _, flow = live_version()
    return _editor_page(flow.text)


@bp.post("/versions/<int:version_id>/publish")
@login_required("admin")
def republish(version_id: int) -> Any:
    """Rollback: an earlier version becomes live again (it was approved when first published)."""
    flow = FLOWS.by_version(db.session, db.get_or_404(FlowVersion, version_id).id)
    done = flow_admin.publish_direct(db.session, flow, by=_me().label, now=_now())
    db.session.commit()
    flash(f"版本 {done.version.id} 已重新生效，新报名的考生将按此版本办理")
    return redirect(url_for("admin_flows.index"))


@bp.post("/versions/<int:version_id>/propose-rollback")
@login_required("admin")
def propose_rollback(version_id: int) -> Any:
    """A rollback that also moves the in-flight applications back: a migrating proposal of the
    earlier version's YAML, so a second admin approves the moves (their history says who)."""
    row = db.get_or_404(FlowVersion, version_id)
    flow = FLOWS.by_version(db.session, row.id)
    found = _new_proposal(flow.text, flow.flow, note=f"回滚到版本 {row.id}，并迁移在办考生", migrate=True)
    flash("已提交回滚申请，须由另一位管理员批准后生效并迁移在办考生")
    return redirect(url_for("admin_flows.proposal", proposal_id=found.id))


# ------------------------------------------------------------------------------ editor API


def _problems(problems: list[Located]) -> Any:
    return jsonify({"ok": False, "problems": [p.to_dict() for p in problems], "svg": None})


@bp.post("/api/validate")
@login_required("admin")
def api_validate() -> Any:
    flow, problems = check(api_yaml())
    if flow is None:
        return _problems(problems)
    _, live = live_version()
    return jsonify(
        {
            "ok": True,
            "problems": [],
            "svg": svg_text(render_svg(flow)),
            "sha256": flow.sha256,
            "removed": removed_states(live, flow),
            "states": list(flow.states),
        }
    )


@bp.post("/api/diff")
@login_required("admin")
def api_diff() -> Any:
    flow, problems = check(api_yaml())
    if flow is None:
        return _problems(problems)
    _, live = live_version()
    diff = diff_flows(live, flow).to_dict()
    return jsonify({"ok": True, "diff": diff, "html": render_template("admin/flows/_diff.html", diff=diff)})


@bp.post("/api/impact")
@login_required("admin")
def api_impact() -> Any:
    """Answered here for a small fleet; a large one (bench/impact.py: 100,000 applications
    take seconds) becomes a worker job whose progress the panel polls."""
    flow, problems = check(api_yaml())
    if flow is None:
        return _problems(problems)
    if _large(flow.flow):
        return queued(flow_jobs.start_impact(db.session, flow.text, by=_me().label, now=_now()))
    report = flow_admin.impact(db.session, flow, now=_now(), limit=IMPACT_LIST).to_dict()
    return jsonify({"ok": True, "report": report, "html": render_template("admin/flows/_impact.html", report=report)})


# ------------------------------------------------------------------------------ proposals


@bp.post("/propose")
@login_required("admin")
def propose() -> Any:
    text = form_yaml()
    note = _note()
    flow, problems = check(text)
    if flow is None:  # a bad YAML never becomes a proposal: back to the editor, every problem listed
        return _editor_page(text, 422, problems=problems, note=note)
    if not note:
        return _editor_page(text, 422, note=note, note_error="请填写修改说明")
    _, live = live_version()
    migrate = request.form.get("migrate") == "1"
    mapping = _mapping(removed_states(live, flow)) if migrate else {}
    try:
        found = _new_proposal(text, flow.flow, note=note, migrate=migrate, mapping=mapping)
    except InvalidInput as exc:
        db.session.rollback()
        messages = [m for ms in exc.fields.values() for m in ms]
        return _editor_page(text, 422, note=note, note_error="；".join(messages) or exc.public_message)
    flash("已提交发布申请，须由另一位管理员批准后发布")
    return redirect(url_for("admin_flows.proposal", proposal_id=found.id))


@bp.get("/proposals/<int:proposal_id>")
@login_required("admin")
def proposal(proposal_id: int) -> Any:
    found = flow_admin.proposal(db.session, proposal_id)
    return render_template(
        "admin/flows/proposal.html",
        proposal=found,
        own=found.proposed_by == _me().label,
        diff=found.diff or None,
        report=found.impact or None,
        job=_job_of(found.id),
    )


def _decide(proposal_id: int, action: Any, done: str) -> Any:
    try:
        action()
    except ServiceError as exc:
        # Self-approval, already decided, a reason missing: said on the proposal's page.
        db.session.rollback()
        log.info("flow proposal %s: %s refused: %s", proposal_id, request.endpoint, exc)
        flash(exc.public_message if not isinstance(exc, InvalidInput) else _first_message(exc))
        return redirect(url_for("admin_flows.proposal", proposal_id=proposal_id))
    db.session.commit()
    flash(done)
    return redirect(url_for("admin_flows.proposal", proposal_id=proposal_id))


def _first_message(exc: InvalidInput) -> str:
    return next((m for ms in exc.fields.values() for m in ms), exc.public_message)


@bp.post("/proposals/<int:proposal_id>/approve")
@login_required("admin")
def approve(proposal_id: int) -> Any:
    def act() -> None:
        big = _large(flow_admin.proposal(db.session, proposal_id).flow)
        result = flow_admin.approve(db.session, engine(), proposal_id, by=_me().label, now=_now(), migrate_now=not big)
        if big and result.proposal.migrate:  # a large fleet moves in a worker job; the page shows its progress
            enqueue_flow_job(flow_jobs.start_migration(db.session, proposal_id, by=_me().label, now=_now()).id)
        if result.migration is not None and not result.migration.ok:
            counts = result.migration.counts
            flash(f"迁移时有{counts['refused']}份报名被拒绝、{counts['failed']}份失败，详见下方")

    return _decide(proposal_id, act, "已批准，新版本已发布")


@bp.post("/proposals/<int:proposal_id>/reject")
@login_required("admin")
def reject(proposal_id: int) -> Any:
    reason = " ".join(request.form.get("reason", "").split())[:MAX_NOTE]
    return _decide(
        proposal_id,
        lambda: flow_admin.reject(db.session, proposal_id, by=_me().label, now=_now(), reason=reason),
        "已驳回该发布申请",
    )

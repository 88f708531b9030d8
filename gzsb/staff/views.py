"""The 确认点 staff console (/staff): queues, items, images, decisions.

Thin on purpose: queries and decisions live in ``gzsb.staff.service``; every route loads its
object through a function that checks the staff member's confirmation point (404 for
another point's applicant, upload or request).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from gzsb.accounts.session import current_account, login_required
from gzsb.adapters.storage import StorageError
from gzsb.bootstrap import engine, storage
from gzsb.common.templates import template_globals
from gzsb.common.uploads import image_response, read_upload
from gzsb.errors import ConflictError, GuardRefused, InvalidInput, NotFound
from gzsb.extensions import db
from gzsb.models import Account, Application, RegistryRecord
from gzsb.staff import service as staff
from gzsb.store import FLOWS

bp = Blueprint("staff", __name__, url_prefix="/staff")

TAKEN = "该事项已被其他工作人员处理，请返回列表查看其他待办。"
CHANGED = "考生信息已更新，请核对后重新操作。"
BUSY = "考生正在进行人脸比对或网上支付，暂不能处理此申请，请稍后再试。"


def _me() -> Account:
    account = current_account()
    assert account is not None  # guarded by login_required
    return account


def _now() -> datetime:
    return current_app.extensions["gzsb.clock"]()


template_globals(bp, staff_queues=staff.QUEUES)


# ------------------------------------------------------------------------------ lists


@bp.get("/")
@login_required("staff")
def dashboard() -> Any:
    me = _me()
    rows = staff.summary(db.session, me, _now())
    return render_template("staff/dashboard.html", rows=rows, point=staff.staff_point(db.session, me))


@bp.get("/queues/<key>")
@login_required("staff")
def queue(key: str) -> Any:
    me = _me()
    chosen = staff.QUEUES.get(key)
    if chosen is None:
        raise NotFound(f"no staff queue {key!r}")
    outcome = request.args.get("outcome", "") if key == "identity" else ""
    items = staff.queue_items(db.session, me, chosen, _now(), outcome if outcome in staff.OUTCOMES else "")
    return render_template(
        "staff/queue.html", queue=chosen, items=items, point=staff.staff_point(db.session, me), now=_now(),
        outcomes=staff.OUTCOMES if key == "identity" else {}, outcome=outcome,
    )  # fmt: skip


# ------------------------------------------------------------------- application items


def _render_item(app: Application, *, errors: Any = None, message: str = "", values: Any = None, status: int = 200):
    me = _me()
    flow = FLOWS.by_version(db.session, app.flow_version_id)
    return (
        render_template(
            "staff/item.html",
            app=app,
            queue=staff.queue_of(app),
            facts=staff.applicant_facts(db.session, app, flow),
            point=staff.staff_point(db.session, me),
            errors=errors or {},
            values=values or {},
            message=message,
        ),
        status,
    )


@bp.get("/applications/<uid>")
@login_required("staff")
def item(uid: str) -> Any:
    return _render_item(staff.application_for(db.session, _me(), uid))


@bp.post("/applications/<uid>/decision")
@login_required("staff")
def decide(uid: str) -> Any:
    me = _me()
    app = staff.application_for(db.session, me, uid)
    waiting = staff.queue_of(app)
    values = {k: request.form.get(k, "") for k in ("decision", "reason_choice", "reason_text", "note")}
    version = request.form.get("version", type=int)
    if waiting is None or request.form.get("queue") != waiting.key:
        return _render_item(app, message=TAKEN, status=409)
    try:
        staff.decide(
            engine(),
            me,
            app,
            waiting,
            approve=values["decision"] == "approve",
            choice=values["reason_choice"],
            text=values["note"] if values["decision"] == "approve" else values["reason_text"],
            version=version,
        )
    except (InvalidInput, GuardRefused) as exc:
        db.session.rollback()
        found = exc.form_errors
        return _render_item(db.session.get(Application, app.id), errors=found, values=values, status=422)
    except ConflictError:
        db.session.rollback()
        message = CHANGED if staff.still_open(db.session, app, waiting) else TAKEN
        return _render_item(db.session.get(Application, app.id), message=message, values=values, status=409)
    verdict = waiting.approve_label if values["decision"] == "approve" else waiting.reject_label
    flash(f"已处理：{app.account.name}，{verdict}。")
    return redirect(url_for("staff.queue", key=waiting.key))


@bp.get("/applications/<uid>/uploads/<upload_uid>")
@login_required("staff")
def upload_image(uid: str, upload_uid: str) -> Any:
    app = staff.application_for(db.session, _me(), uid)
    upload, data = read_upload(db.session, storage(), upload_uid[:40], application_id=app.id)
    return image_response(data, upload.kind.replace("_", "-"))


@bp.get("/applications/<uid>/xueji-photo")
@login_required("staff")
def xueji_photo(uid: str) -> Any:
    """The registry photo of the applicant's own 学籍/学历 record."""
    app = staff.application_for(db.session, _me(), uid)
    record_id = (((app.data or {}).get("xueji") or {}).get("record") or {}).get("id")
    record = db.session.get(RegistryRecord, record_id) if isinstance(record_id, int) else None
    if record is None or record.id_number_index != app.account.id_number_index or not record.photo:
        raise NotFound(f"no registry photo for application {uid}")
    return image_response(record.photo, "xueji-photo")


# ------------------------------------------------------------------ correction requests


def _render_correction(
    request_id: int, *, errors: Any = None, message: str = "", values: Any = None, status: int = 200
) -> Any:
    me = _me()
    correction, app = staff.correction_for(db.session, me, request_id)
    flow = FLOWS.by_version(db.session, app.flow_version_id)
    record = db.session.get(RegistryRecord, correction.registry_record_id) if correction.registry_record_id else None
    return (
        render_template(
            "staff/correction.html",
            correction=correction,
            app=app,
            record=record,
            queue=staff.QUEUES["corrections"],
            can_decide=bool(flow.branches(staff.CORRECTION_EVENT, app.state)),
            busy=BUSY,
            facts=staff.applicant_facts(db.session, app, flow),
            point=staff.staff_point(db.session, me),
            errors=errors or {},
            values=values or {},
            message=message,
        ),
        status,
    )


@bp.get("/corrections/<int:request_id>")
@login_required("staff")
def correction(request_id: int) -> Any:
    return _render_correction(request_id)


@bp.post("/corrections/<int:request_id>/decision")
@login_required("staff")
def decide_correction(request_id: int) -> Any:
    me = _me()
    correction, app = staff.correction_for(db.session, me, request_id)
    chosen = staff.QUEUES["corrections"]
    values = {k: request.form.get(k, "") for k in ("decision", "reason_choice", "reason_text", "note")}
    if correction.status != "open":
        return _render_correction(request_id, message=TAKEN, status=409)
    approve = values["decision"] == "approve"
    try:
        staff.decide(
            engine(),
            me,
            app,
            chosen,
            approve=approve,
            choice=values["reason_choice"],
            text=values["note"] if approve else values["reason_text"],
            version=request.form.get("version", type=int),
            request_id=request_id,
        )
    except (InvalidInput, GuardRefused) as exc:
        db.session.rollback()
        found = exc.form_errors
        return _render_correction(request_id, errors=found, values=values, status=422)
    except ConflictError as exc:
        db.session.rollback()
        if staff.still_open(db.session, app, chosen, request_id):
            # Open, but the applicant's state moved (or cannot take the decision right now).
            message = BUSY if exc.code == "event_not_available" else CHANGED
        else:
            message = TAKEN
        return _render_correction(request_id, message=message, values=values, status=409)
    verdict = chosen.approve_label if approve else chosen.reject_label
    flash(f"已处理：{app.account.name}的学籍/学历更正申请，{verdict}。")
    return redirect(url_for("staff.queue", key=chosen.key))


@bp.get("/corrections/<int:request_id>/evidence/<int:number>")
@login_required("staff")
def evidence(request_id: int, number: int) -> Any:
    correction, _app = staff.correction_for(db.session, _me(), request_id)
    keys = staff.correction_evidence(correction)
    if not 1 <= number <= len(keys):
        raise NotFound(f"correction request {request_id} has no evidence {number}")
    try:
        data = storage().get(keys[number - 1])
    except StorageError:
        raise NotFound(f"evidence {number} of correction request {request_id} is missing from storage") from None
    return image_response(data, "evidence")

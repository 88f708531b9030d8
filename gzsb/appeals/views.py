"""账号申诉 pages: the appellant's two steps and status page, and the deciders' queue.

Appellant (no log-in): 1. name, ID number and mobile, checked before an SMS code is sent;
the code proves the mobile and opens a draft case (its uid in the session). 2. both sides
of the ID card and a photo holding it, then 【提交申诉】: the case number and the promised
date. The status page takes the case number and the mobile.

Deciders (/appeals/queue): admins see every case, staff those of their 确认点. Approving
freezes the old account's application through the engine (``freeze_for_appeal``), then
issues the owner's new account and sends its one-time password by SMS.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from gzsb.accounts import otp
from gzsb.accounts.forms import Form, check_code_shape, check_id_number, check_mobile, check_name
from gzsb.accounts.ratelimit import TOO_MANY, blocked, failure, sms_allowed
from gzsb.accounts.session import current_account, login_required
from gzsb.adapters.sms import SmsFailed, sms_sender
from gzsb.appeals import files
from gzsb.appeals import service as appeals
from gzsb.appeals.names import FREEZE_FOR_APPEAL
from gzsb.bootstrap import engine, storage, vault
from gzsb.common.beijing import as_utc
from gzsb.common.security import mask_id_number, mask_mobile, mask_name
from gzsb.common.templates import template_globals
from gzsb.common.uploads import ImageProblem, accept_image, image_response
from gzsb.errors import ConflictError, EventNotAvailable, InvalidInput, RateLimited
from gzsb.extensions import csrf, db
from gzsb.models import Account, AppealCase, Application
from gzsb.store import FLOWS
from gzsb.workflow.ports import Actor

log = logging.getLogger(__name__)
bp = Blueprint("appeals", __name__)

START_FIELDS = ("name", "id_number", "mobile", "code")
STATUS_FIELDS = ("number", "mobile")
DRAFT_KEY = "appeal_draft"
# Room for the multipart framing, the CSRF token and the submit flag around three files.
FORM_SLACK = 64 * 1024


template_globals(bp, appeal_status_labels=appeals.STATUS_LABELS, appeal_action_labels=appeals.ACTION_LABELS)


def _now() -> datetime:
    return as_utc(current_app.extensions["gzsb.clock"]())


def _settings() -> appeals.Settings:
    return appeals.Settings.from_config(current_app.config)


def _sms(mobile: str, template: str, **fields: Any) -> bool:
    """Send and commit; False (logged) when the provider refused."""
    try:
        body = current_app.config["SMS_TEMPLATES"][template].format(**fields)
        sms_sender(current_app.config, db.session, vault()).send(mobile, body)
        db.session.commit()
        return True
    except SmsFailed:
        db.session.rollback()
        log.warning("appeal SMS %s to %s failed", template, mask_mobile(mobile))
        return False


# ------------------------------------------------------------------ 1. who and mobile


def _render_start(form: Form, status: int, notice: str = "") -> Any:
    return render_template("appeals/start.html", values=form.values, errors=form.errors, notice=notice), status


def _checked(form: Form, now: datetime) -> tuple[str | None, str | None, str | None]:
    name, person, mobile = check_name(form), check_id_number(form, "id_number", now), check_mobile(form)
    return name, person.value if person else None, mobile


@bp.get("/appeal")
def start() -> Any:
    return _render_start(Form(START_FIELDS), 200)


@bp.post("/appeal/code")
def send_code() -> Any:
    """【获取验证码】: only once name, ID number and mobile are valid."""
    now, form = _now(), Form(START_FIELDS)
    _, _, mobile = _checked(form, now)
    if not form.ok("name", "id_number", "mobile"):
        return _render_start(form, 422)
    assert mobile is not None
    policy = otp.OtpPolicy.from_config(current_app.config)

    def deliver(code: str) -> None:
        text = otp.otp_message(current_app.config["SMS_TEMPLATES"]["otp"], code, policy)
        sms_sender(current_app.config, db.session, vault()).send(mobile, text)

    try:
        sms_allowed(mobile)
        otp.issue(db.session, policy, target_index=vault().index(mobile), purpose="appeal", now=now, deliver=deliver)
    except (RateLimited, SmsFailed) as exc:
        db.session.rollback()
        form.error("code", exc.public_message)
        return _render_start(form, exc.http_status)
    db.session.commit()
    return _render_start(form, 200, f"验证码已发送至{mask_mobile(mobile)}，{policy.ttl.seconds // 60}分钟内有效。")


@bp.post("/appeal")
def verify() -> Any:
    now, form = _now(), Form(START_FIELDS)
    # Failures count per mobile typed and per client IP (a school's NAT shares the IP).
    if blocked("appeal", request.form.get("mobile", "")):
        form.error("code", TOO_MANY)
        return _render_start(form, 429)
    name, id_number, mobile = _checked(form, now)
    code = check_code_shape(form)
    if not form.ok():
        return _render_start(form, 422)
    assert name is not None and id_number is not None and mobile is not None
    policy = otp.OtpPolicy.from_config(current_app.config)
    try:
        otp.verify(db.session, policy, target_index=vault().index(mobile), purpose="appeal", code=code, now=now)
    except otp.OtpRejected as exc:
        db.session.commit()  # the wrong try counts
        failure("appeal", mobile)
        form.error("code", exc.public_message)
        return _render_start(form, 422)
    db.session.commit()  # the code is spent, whatever follows
    try:
        case = appeals.open_draft(db.session, vault(), name=name, id_number=id_number, mobile=mobile, now=now)
    except InvalidInput as exc:
        db.session.rollback()
        for field, messages in exc.form_errors.items():
            for message in messages:
                form.error(field, message)
        return _render_start(form, 409)
    db.session.commit()
    session[DRAFT_KEY] = case.uid
    return redirect(url_for("appeals.images"))


# ------------------------------------------------------------------------ 2. images


def _draft() -> AppealCase:
    return appeals.draft(db.session, str(session.get(DRAFT_KEY, ""))[:40], _now(), _settings())


def _render_images(case: AppealCase, errors: dict[str, list[str]], status: int) -> Any:
    live = files.live_files(db.session, case)
    return render_template(
        "appeals/images.html",
        case=case,
        kinds=appeals.KINDS,
        live=live,
        errors=errors,
        max_mb=current_app.config["UPLOAD_MAX_BYTES"] // (1024 * 1024),
    ), status


@bp.get("/appeal/images")
def images() -> Any:
    try:
        case = _draft()
    except ConflictError as exc:
        return _render_start(Form(START_FIELDS), 409, exc.public_message)
    return _render_images(case, {}, 200)


def _read_images(case: AppealCase, now: datetime) -> dict[str, list[str]]:
    """Check and store every file sent; errors by field (the good ones are kept)."""
    errors: dict[str, list[str]] = {}
    config = current_app.config
    for kind, label in appeals.KINDS.items():
        upload = request.files.get(kind)
        if upload is None or not upload.filename:
            continue
        try:
            image = accept_image(
                upload.stream, max_bytes=config["UPLOAD_MAX_BYTES"], max_pixels=config["UPLOAD_MAX_PIXELS"]
            )
        except ImageProblem as exc:
            errors[kind] = [f"{label}：{exc.chinese}"]
            continue
        files.attach(db.session, storage(), vault(), case, kind, image, now, _settings())
    return errors


@bp.post("/appeal/images")
def send_images() -> Any:
    """The files, then 【提交申诉】. The body is capped before anything reads it, so CSRF is
    checked here after the cap (not by the app-wide hook)."""
    now = _now()
    limit = 3 * current_app.config["UPLOAD_MAX_BYTES"] + FORM_SLACK
    too_large = {"files": [f"每张图片不能超过{current_app.config['UPLOAD_MAX_BYTES'] // (1024 * 1024)}MB"]}
    try:
        if request.content_length is not None and request.content_length > limit:
            raise RequestEntityTooLarge()
        request.max_content_length = limit
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()  # before anything else: a forged post changes nothing
        case = _draft()
        errors = _read_images(case, now)
    except ConflictError as exc:
        return _render_start(Form(START_FIELDS), 409, exc.public_message)
    except RequestEntityTooLarge:
        db.session.rollback()
        return _render_images(_draft(), too_large, 413)
    db.session.commit()
    if errors:
        return _render_images(case, errors, 422)
    try:
        appeals.submit(db.session, case, set(files.live_files(db.session, case)), now, _settings())
    except InvalidInput as exc:
        db.session.rollback()
        return _render_images(case, exc.form_errors, 422)
    db.session.commit()
    session.pop(DRAFT_KEY, None)
    due = case.due_on.strftime("%Y年%m月%d日") if case.due_on else ""
    _sms(vault().decrypt(case.mobile_enc), "appeal_submitted", number=case.number, due=due)
    return render_template("appeals/submitted.html", case=case, working_days=_settings().working_days)


csrf.exempt("gzsb.appeals.views.send_images")


# --------------------------------------------------------------------------- status


@bp.route("/appeal/status", methods=["GET", "POST"])
def status() -> Any:
    form = Form(STATUS_FIELDS)
    if request.method == "GET":
        return render_template("appeals/status.html", values=form.values, errors={}, case=None), 200
    if blocked("appeal_status", request.form.get("number", "")):
        form.error("number", TOO_MANY)
        return render_template("appeals/status.html", values=form.values, errors=form.errors, case=None), 429
    mobile = check_mobile(form)
    if not form.values["number"]:
        form.error("number", "请输入申诉编号")
    case = appeals.lookup(db.session, vault(), form.values["number"], mobile) if form.ok() and mobile else None
    if form.ok() and case is None:
        failure("appeal_status", form.values["number"])
        form.error("number", "未找到与申诉编号和手机号一致的申诉，请核对")
    code = 200 if case is not None else 422
    return render_template("appeals/status.html", values=form.values, errors=form.errors, case=case), code


# ---------------------------------------------------------------------------- queue


def _me() -> Account:
    account = current_account()
    assert account is not None  # guarded by login_required
    return account


def _layout(account: Account) -> str:
    return "appeals/_staff.html" if account.role == "staff" else "appeals/_admin.html"


@bp.get("/appeals/queue")
@login_required("staff", "admin")
def queue() -> Any:
    me = _me()
    pending = appeals.queue(db.session, me)
    decided = appeals.queue(db.session, me, "granted")[-20:] + appeals.queue(db.session, me, "rejected")[-20:]
    return render_template("appeals/queue.html", layout=_layout(me), pending=pending, decided=decided, now=_now())


def _case_facts(case: AppealCase) -> dict[str, Any]:
    old = db.session.get(Account, case.old_account_id) if case.old_account_id else None
    old_app = None
    if old is not None:
        old_app = db.session.query(Application).filter(Application.account_id == old.id).first()
    return {
        "name": case.name,
        "id_number": mask_id_number(vault().decrypt(case.id_number_enc)),
        "mobile": mask_mobile(vault().decrypt(case.mobile_enc)),
        "old_name": mask_name(old.name) if old else "",
        "old_mobile": mask_mobile(vault().decrypt(old.mobile_enc)) if old and old.mobile_enc else "未绑定",
        "old_created": old.created_at if old else None,
        "old_disabled": old is not None and old.disabled_at is not None,
        "old_app": old_app,
        "old_state": FLOWS.by_version(db.session, old_app.flow_version_id).states[old_app.state].label
        if old_app
        else "",
    }


def _render_case(case: AppealCase, errors: dict[str, list[str]] | None = None, status: int = 200) -> Any:
    me = _me()
    return render_template(
        "appeals/case.html",
        layout=_layout(me),
        case=case,
        facts=_case_facts(case),
        live=files.live_files(db.session, case),
        kinds=appeals.KINDS,
        events=appeals.events_of(db.session, case),
        errors=errors or {},
    ), status


@bp.get("/appeals/<number>")
@login_required("staff", "admin")
def case(number: str) -> Any:
    return _render_case(appeals.case_for(db.session, _me(), number))


@bp.get("/appeals/<number>/images/<uid>")
@login_required("staff", "admin")
def image(number: str, uid: str) -> Any:
    found = appeals.case_for(db.session, _me(), number)
    row, data = files.read(db.session, storage(), vault(), found, uid)
    return image_response(data, f"appeal-{row.kind}")


def _issue_and_send(found: AppealCase, actor: str) -> None:
    account, password = appeals.issue_account(db.session, vault(), found, actor=actor, now=_now())
    db.session.commit()
    sent = _sms(
        vault().decrypt(found.mobile_enc), "appeal_approved", name=account.name, number=found.number, password=password
    )
    flash("新账号的初始密码已通过短信发送给申诉人。" if sent else "短信发送失败，请稍后点击【重发初始密码】。")


@bp.post("/appeals/<number>/approve")
@login_required("staff", "admin")
def approve(number: str) -> Any:
    me = _me()
    found = appeals.case_for(db.session, me, number)
    actor, now = Actor(f"account:{me.id}", me.role), _now()
    target = appeals.frozen_target(db.session, found)
    try:
        if target is not None:
            engine().fire(target.id, FREEZE_FOR_APPEAL, actor, {"case": found.number}, now=now)
        else:
            appeals.approve_locked(db.session, found.number, account_id=None, actor=actor.id, now=now)
        appeals.shorten_retention(db.session, found, now, _settings())
        db.session.commit()
    except (ConflictError, EventNotAvailable) as exc:
        db.session.rollback()
        return _render_case(db.session.get(AppealCase, found.id), {"decision": [exc.public_message]}, 409)
    _issue_and_send(db.session.get(AppealCase, found.id), actor.id)
    return redirect(url_for("appeals.case", number=found.number))


@bp.post("/appeals/<number>/reissue")
@login_required("staff", "admin")
def reissue(number: str) -> Any:
    me = _me()
    found = appeals.case_for(db.session, me, number)
    try:
        _issue_and_send(found, f"account:{me.id}")
    except ConflictError as exc:
        db.session.rollback()
        return _render_case(found, {"decision": [exc.public_message]}, 409)
    return redirect(url_for("appeals.case", number=found.number))


@bp.post("/appeals/<number>/reject")
@login_required("staff", "admin")
def reject(number: str) -> Any:
    me = _me()
    found = appeals.case_for(db.session, me, number)
    try:
        appeals.reject(
            db.session, found, actor=f"account:{me.id}", reason=request.form.get("reason", ""), now=_now(),
            settings=_settings(),
        )  # fmt: skip
        db.session.commit()
    except (InvalidInput, ConflictError) as exc:
        db.session.rollback()
        errors = exc.form_errors if isinstance(exc, InvalidInput) else {"decision": [exc.public_message]}
        return _render_case(db.session.get(AppealCase, found.id), errors, exc.http_status)
    _sms(vault().decrypt(found.mobile_enc), "appeal_rejected", number=found.number)
    flash("已驳回该申诉，申诉人可凭申诉编号查询原因。")
    return redirect(url_for("appeals.case", number=found.number))

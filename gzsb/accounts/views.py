"""Accounts in the browser: home-page facts, 注册, 登录, 退出, 找回密码, 找回用户名.

Sessions carry the account's epoch (``gzsb.accounts.session``), so logging out or changing
the password ends them on the server (an old cookie no longer works).

Rate limits:

- per account: ``LOCK_AFTER`` wrong passwords lock the account for ``LOCK_FOR`` (database);
- per account key and per client IP: ``gzsb.accounts.ratelimit`` (Flask-Limiter, shared by all nodes);
- per mobile number: the SMS code rules of ``gzsb.accounts.otp`` (database).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from gzsb.accounts import first_login, otp, ratelimit
from gzsb.accounts.forms import (
    Form,
    check_code_shape,
    check_id_number,
    check_mobile,
    check_name,
    check_new_password,
    login_name,
    password_rules,
)
from gzsb.accounts.idcard import IdNumber, normalize_id_number
from gzsb.accounts.names import FEE_YUAN, REGISTRATION
from gzsb.accounts.ratelimit import TOO_MANY
from gzsb.accounts.service import (
    check_password,
    check_password_of_nobody,
    create_account,
    find_account,
    find_by_id_number,
    id_number_taken,
    login_succeeded,
    mobile_taken,
    reserve_login_try,
    set_password,
)
from gzsb.accounts.session import LOCK_AFTER, LOCK_FOR, current_account, safe_next, start_session
from gzsb.adapters.sms import SmsFailed, sms_sender
from gzsb.bootstrap import vault
from gzsb.common.beijing import as_utc, beijing_text
from gzsb.common.security import install_log_masking, mask_id_number, mask_mobile
from gzsb.errors import ConflictError, NotFound, RateLimited
from gzsb.extensions import db
from gzsb.models import Account
from gzsb.store import FLOWS

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)
bp.record_once(lambda _state: install_log_masking())


RESET_SENT = "如果身份证号和手机号与注册信息一致，验证码已发送到该手机，{minutes}分钟内有效。"
RESET_CODE_GONE = "验证码已失效，请重新获取"
ID_TAKEN = "该身份证号已注册"
MOBILE_TAKEN = "该手机号已绑定其他账号"
USERNAME_MISS = "未找到与所填信息一致的账号，请核对身份证号和姓名；如仍有问题，请联系所在确认点。"


def _now() -> datetime:
    return as_utc(current_app.extensions["gzsb.clock"]())


def _policy() -> otp.OtpPolicy:
    return otp.OtpPolicy.from_config(current_app.config)


def _deliver(mobile: str, purpose: str, template: str = "otp") -> Callable[[str], None]:
    """Send the code, or (``template`` other than otp) a notice in its place that holds no code."""

    def send(code: str) -> None:
        text = current_app.config["SMS_TEMPLATES"][template]
        body = otp.otp_message(text, code, _policy()) if template == "otp" else text
        sms_sender(current_app.config, db.session, vault()).send(mobile, body)
        log.info("verification SMS (%s, %s) sent to %s", purpose, template, mask_mobile(mobile))

    return send


def _send_code(form: Form, mobile: str, purpose: str, *, deliver: Callable[[str], None] | None, now: datetime) -> int:
    """Issue a code (a decoy when ``deliver`` is None); errors go to the code field. HTTP status."""
    try:
        ratelimit.sms_allowed(mobile)
        otp.issue(db.session, _policy(), target_index=vault().index(mobile), purpose=purpose, now=now, deliver=deliver)
    except (RateLimited, SmsFailed) as exc:
        db.session.rollback()
        form.error("code", exc.public_message)
        return exc.http_status
    db.session.commit()
    return 200


# ------------------------------------------------------------------------------ home


@bp.app_template_global("exam_overview")
def exam_overview() -> dict[str, Any] | None:
    """The registration window of the published flow, in Beijing time, and whether it is open."""
    try:
        version = FLOWS.current(db.session, current_app.config["FLOW_NAME"])
    except NotFound:
        return None
    flow = FLOWS.by_version(db.session, version.id)
    window = flow.windows.get(REGISTRATION)
    result: dict[str, Any] = {"title": flow.title, "window": None}
    if window is not None:
        phase = window.phase(_now())
        status = {"upcoming": "未开始", "open": "进行中", "closed": "已截止"}[phase]
        result["window"] = {
            "opens": beijing_text(window.opens),
            "closes": beijing_text(window.closes),
            "status": status,
            "open": phase == "open",
        }
    result["fee_yuan"] = flow.settings.get(FEE_YUAN)
    return result


# ----------------------------------------------------------------------------- login


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    name = login_name()
    if request.method == "POST":
        now = _now()
        if ratelimit.blocked("login", name):
            minutes = ratelimit.pause_minutes()
            return render_template("login.html", error=f"操作过于频繁，请{minutes}分钟后再试", login_name=name), 429
        password = request.form.get("password", "")
        account = find_account(db.session, vault(), name)
        # The try is counted before the password is checked (see reserve_login_try).
        number = None if account is None else reserve_login_try(db.session, account.id, now, **_lock())
        if account is not None and number is not None and check_password(account, password):
            login_succeeded(db.session, account)
            db.session.commit()
            start_session(account)
            return redirect(safe_next(request.args.get("next", "")) or first_login.home_for(account))
        if account is None:
            check_password_of_nobody(password)
        ratelimit.failure("login", name)
        locked = account is not None and number is None
        error = "账号已被临时锁定，请15分钟后再试" if locked else "账号或密码错误"
    return render_template("login.html", error=error, login_name=name), (401 if error else 200)


def _lock() -> dict[str, Any]:
    return {"lock_after": LOCK_AFTER, "lock_for": LOCK_FOR}


@bp.post("/logout")
def logout() -> Any:
    account = current_account()
    if account is not None:
        account.session_epoch += 1
        db.session.commit()
    session.clear()
    return redirect(url_for("enrollment.home"))


# -------------------------------------------------------------------------- register

REGISTER_FIELDS = ("name", "id_number", "id_number2", "mobile", "code", "agree")


def _render_register(form: Form, person: IdNumber | None, status: int, notice: str = "") -> Any:
    return render_template(
        "register.html",
        values=form.values,
        errors=form.errors,
        person=person,
        notice=notice,
        password_rules=password_rules(),
    ), status


def _register_identity(form: Form, now: datetime) -> IdNumber | None:
    """Name and ID number twice: the derived person when the ID number is valid."""
    check_name(form)
    person = check_id_number(form, "id_number", now)
    again = normalize_id_number(form.values["id_number2"])
    form.values["id_number2"] = again
    if not again:
        form.error("id_number2", "请再次输入身份证号")
    elif person is not None and again != person.value:
        form.error("id_number2", "两次输入的身份证号不一致")
    return person


@bp.get("/register")
def register_form() -> Any:
    return _render_register(Form(REGISTER_FIELDS), None, 200)


@bp.post("/register/code")
def register_code() -> Any:
    """【获取验证码】: the whole form comes along so nothing typed is lost.

    Name, ID number and mobile are checked first. The answer is the same whether or not the
    mobile is registered already: a registered mobile gets a notice instead of a code (its
    owner learns that someone tried; whoever typed it learns nothing), with the same limits.
    """
    now = _now()
    form = Form(REGISTER_FIELDS)
    person = _register_identity(form, now)
    mobile = check_mobile(form)
    if not form.ok("name", "id_number", "id_number2", "mobile"):
        return _render_register(form, person, 422)
    assert mobile is not None
    template = "register_taken" if mobile_taken(db.session, vault(), mobile) else "otp"
    status = _send_code(form, mobile, "register", deliver=_deliver(mobile, "register", template), now=now)
    notice = f"验证码已发送至{mask_mobile(mobile)}，{_policy().ttl.seconds // 60}分钟内有效。" if status == 200 else ""
    return _render_register(form, person, status, notice)


@bp.post("/register")
def register() -> Any:
    """Whether the ID number or mobile is registered is told only after the SMS code is verified."""
    now = _now()
    form = Form(REGISTER_FIELDS)
    if ratelimit.blocked("register", request.form.get("mobile", "")):
        form.error("code", TOO_MANY)
        return _render_register(form, None, 429)
    person = _register_identity(form, now)
    mobile = check_mobile(form)
    password = check_new_password(form, person.value if person else None, mobile)
    code = check_code_shape(form)
    if not form.values["agree"]:
        form.error("agree", "请阅读并同意《考生注册协议》")
    if not form.ok():
        return _render_register(form, person, 422)
    assert person is not None and mobile is not None
    try:
        otp.verify(db.session, _policy(), target_index=vault().index(mobile), purpose="register", code=code, now=now)
    except otp.OtpRejected as exc:
        db.session.commit()  # the wrong try counts
        ratelimit.failure("register", request.form.get("mobile", ""))
        form.error("code", exc.public_message)
        return _render_register(form, person, 422)
    db.session.commit()  # the code is spent, whatever follows
    if id_number_taken(db.session, vault(), person.value):
        form.error("id_number", ID_TAKEN)
    if mobile_taken(db.session, vault(), mobile):
        form.error("mobile", MOBILE_TAKEN)
    if not form.ok():
        ratelimit.failure("register", request.form.get("mobile", ""))
        return _render_register(form, person, 409)
    try:
        account = create_account(
            db.session, vault(), name=form.values["name"], id_number=person.value, password=password, mobile=mobile
        )
    except ConflictError as exc:  # lost a race with another registration of this ID number
        form.error("id_number", exc.public_message)
        return _render_register(form, person, 409)
    db.session.commit()
    log.info("registered account %d for %s", account.id, mask_id_number(person.value))
    start_session(account)
    return redirect(url_for("enrollment.process"))


# ---------------------------------------------------------------------- 找回密码

RESET_FIELDS = ("id_number", "mobile", "code")


def _render_reset(form: Form, status: int, notice: str = "", done: bool = False) -> Any:
    return render_template(
        "recover_password.html",
        values=form.values,
        errors=form.errors,
        notice=notice,
        done=done,
        password_rules=password_rules(),
    ), status


def _reset_identity(form: Form, now: datetime) -> tuple[IdNumber | None, str | None]:
    return check_id_number(form, "id_number", now), check_mobile(form)


def _matching_account(person: IdNumber, mobile: str) -> Account | None:
    account = find_by_id_number(db.session, vault(), person.value)
    if account is None or account.mobile_index is None or account.mobile_index != vault().index(mobile):
        return None
    return account


@bp.get("/recover/password")
def recover_password_form() -> Any:
    return _render_reset(Form(RESET_FIELDS), 200)


@bp.post("/recover/password/code")
def recover_password_code() -> Any:
    """Sends a code only if ID number and mobile belong to one account, but answers the same
    either way: a decoy code (never sent) keeps even the resend limit identical."""
    now = _now()
    form = Form(RESET_FIELDS)
    person, mobile = _reset_identity(form, now)
    if not form.ok():
        return _render_reset(form, 422)
    assert person is not None and mobile is not None
    account = _matching_account(person, mobile)
    deliver = _deliver(mobile, "reset") if account is not None else None
    status = _send_code(form, mobile, "reset", deliver=deliver, now=now)
    notice = RESET_SENT.format(minutes=_policy().ttl.seconds // 60) if status == 200 else ""
    return _render_reset(form, status, notice)


@bp.post("/recover/password")
def recover_password() -> Any:
    now = _now()
    form = Form(RESET_FIELDS)
    person, mobile = _reset_identity(form, now)
    password = check_new_password(form, person.value if person else None, mobile)
    code = check_code_shape(form)
    if not form.ok():
        return _render_reset(form, 422)
    assert person is not None and mobile is not None
    try:
        otp.verify(db.session, _policy(), target_index=vault().index(mobile), purpose="reset", code=code, now=now)
    except otp.OtpRejected as exc:
        db.session.commit()  # the wrong try counts
        form.error("code", exc.public_message)
        return _render_reset(form, 422)
    account = _matching_account(person, mobile)
    if account is None:
        # A right code for this mobile, but not for this ID number: the code is spent.
        db.session.commit()
        form.error("code", RESET_CODE_GONE)
        return _render_reset(form, 422)
    set_password(account, password)
    db.session.commit()
    log.info("password of account %d reset by SMS code; its sessions are ended", account.id)
    try:
        body = current_app.config["SMS_TEMPLATES"]["password_reset"].format(name=account.name)
        sms_sender(current_app.config, db.session, vault()).send(mobile, body)
        db.session.commit()
    except SmsFailed:
        db.session.rollback()
    session.clear()
    return _render_reset(Form(()), 200, done=True)


# -------------------------------------------------------------------- 找回用户名

USERNAME_FIELDS = ("id_number", "name")


def _render_username(form: Form, status: int, found: dict[str, str] | None = None, miss: bool = False) -> Any:
    return render_template(
        "recover_username.html", values=form.values, errors=form.errors, found=found, miss=miss
    ), status


@bp.route("/recover/username", methods=["GET", "POST"])
def recover_username() -> Any:
    form = Form(USERNAME_FIELDS)
    if request.method == "GET":
        return _render_username(form, 200)
    now = _now()
    if ratelimit.blocked("recover", request.form.get("id_number", "")):
        form.error("id_number", TOO_MANY)
        return _render_username(form, 429)
    person = check_id_number(form, "id_number", now)
    if not form.values["name"]:
        form.error("name", "请输入姓名")
    if not form.ok():
        return _render_username(form, 422)
    assert person is not None
    account = find_by_id_number(db.session, vault(), person.value)
    if account is None or account.name != form.values["name"]:
        ratelimit.failure("recover", request.form.get("id_number", ""))
        return _render_username(form, 200, miss=True)
    mobile = vault().decrypt(account.mobile_enc) if account.mobile_enc else ""
    found = {"id_number": mask_id_number(person.value), "mobile": mask_mobile(mobile) if mobile else "未绑定"}
    return _render_username(form, 200, found=found)

"""The account pages' form: typed values and Chinese errors per field, and the field checks."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import request

from gzsb.accounts import otp
from gzsb.accounts.idcard import IdNumber, parse_id_number
from gzsb.accounts.passwords import MAX_LENGTH, MIN_LENGTH, password_problems
from gzsb.accounts.validators import ascii_digits, normalize, parse_mobile, parse_name
from gzsb.common.beijing import BEIJING

log = logging.getLogger(__name__)


class Form:
    """Typed values (NFKC-normalised, stripped, capped; passwords never kept) and Chinese errors per field."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.values: dict[str, Any] = {name: normalize(request.form.get(name, "")) for name in fields}
        self.errors: dict[str, list[str]] = {}

    def error(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)

    def ok(self, *fields: str) -> bool:
        return not any(self.errors.get(f) for f in fields) if fields else not self.errors


def check_id_number(form: Form, field: str, now: datetime) -> IdNumber | None:
    raw = form.values[field]
    if not raw:
        form.error(field, "请输入身份证号")
        return None
    try:
        person = parse_id_number(raw, today=now.astimezone(BEIJING).date())
    except ValueError as exc:
        form.error(field, str(exc))
        return None
    form.values[field] = person.value  # upper-case X, no spaces
    return person


def check_name(form: Form, field: str = "name") -> str | None:
    if not form.values[field]:
        form.error(field, "请输入姓名")
        return None
    try:
        return parse_name(form.values[field])
    except ValueError as exc:
        form.error(field, str(exc))
        return None


def check_mobile(form: Form, field: str = "mobile") -> str | None:
    if not form.values[field]:
        form.error(field, "请输入手机号")
        return None
    try:
        mobile = parse_mobile(form.values[field])
    except ValueError as exc:
        form.error(field, str(exc))
        return None
    form.values[field] = mobile
    return mobile


def check_new_password(form: Form, id_number: str | None, mobile: str | None) -> str:
    password = request.form.get("password", "")
    for problem in password_problems(password, id_number=id_number, mobile=mobile):
        form.error("password", problem)
    if password and request.form.get("password2", "") != password:
        form.error("password2", "两次输入的密码不一致")
    return password


def check_code_shape(form: Form) -> str:
    code = form.values["code"]
    if not code:
        form.error("code", "请输入短信验证码")
    elif not ascii_digits(code, otp.DIGITS):
        form.error("code", "请输入6位数字短信验证码")
    return code


def login_name() -> str:
    """The log-in field as typed: an ID number or a mobile, normalised the way both are stored."""
    return normalize(request.form.get("login", ""), 40).replace(" ", "").upper()


def password_rules() -> str:
    return f"{MIN_LENGTH}～{MAX_LENGTH}位，须同时包含字母和数字，可含空格，不能是常见密码，不能包含出生日期或手机号"

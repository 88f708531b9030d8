"""The account pages' form: typed values and Chinese errors per field, and the field checks."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from flask import request

from gzsb.accounts import otp
from gzsb.accounts.idcard import IdNumber, parse_id_number
from gzsb.accounts.passwords import MAX_LENGTH, MIN_LENGTH, password_problems
from gzsb.common.beijing import BEIJING

log = logging.getLogger(__name__)

MOBILE = re.compile(r"^1[3-9]\d{9}$")
NAME = re.compile(r"^[\u4e00-\u9fff·•A-Za-z ]{2,30}$")


class Form:
    """Typed values (stripped; passwords never kept) and Chinese errors per field."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.values: dict[str, Any] = {name: request.form.get(name, "").strip() for name in fields}
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


def derived_person(raw: str, now: datetime) -> IdNumber | None:
    """Birth date and sex to show beside a valid ID number (None, silently, if invalid)."""
    try:
        return parse_id_number(raw, today=now.astimezone(BEIJING).date()) if raw else None
    except ValueError:
        return None


def check_mobile(form: Form, field: str = "mobile") -> str | None:
    mobile = form.values[field].replace(" ", "")
    form.values[field] = mobile
    if not mobile:
        form.error(field, "请输入手机号")
        return None
    if not MOBILE.match(mobile):
        form.error(field, "请输入11位手机号码")
        return None
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
    elif not (code.isascii() and code.isdigit() and len(code) == otp.DIGITS):
        form.error("code", "请输入6位数字短信验证码")
    return code


def password_rules() -> str:
    return f"{MIN_LENGTH}～{MAX_LENGTH}位，须同时包含字母和数字，不能是常见密码，不能包含出生日期或手机号"

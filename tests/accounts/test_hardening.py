"""Issue 14, accounts and sessions: each attack of the black-box run, as a test that failed before.

Unicode digits, unknown area codes, open redirects after log-in, registration probing,
the Argon2 parameters and rehash, idle sessions and cookie flags. The concurrent log-in
lock is tested on PostgreSQL in ``tests/integration/test_pg_login.py``.
"""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from marshmallow import ValidationError
from sqlalchemy import select

from gzsb.accounts.idcard import PROVINCES, check_digit, parse_id_number
from gzsb.accounts.service import check_password, reserve_login_try
from gzsb.accounts.session import LOCK_AFTER, LOCK_FOR, SEEN_STEP, safe_next
from gzsb.accounts.validators import parse_mobile
from gzsb.admin import service as admin
from gzsb.bootstrap import vault
from gzsb.config import Config
from gzsb.enrollment.steps import BasicInfoSchema, _basic_info_example
from gzsb.errors import InvalidInput
from gzsb.extensions import db
from gzsb.models import Account, SmsMessage
from tests.accounts.test_views import (
    ID,
    MOBILE,
    client_at,
    field_error,
    login,
    register,
    send_register_code,
    sms_code,
)
from tests.admin.support import BY, NOW, TODAY
from tests.support import demo_student

FULLWIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def with_check_digit(first17: str) -> str:
    return first17 + check_digit(first17)


# ------------------------------------------------------------------ Unicode digits


def test_fullwidth_id_number_becomes_the_ascii_one_and_other_scripts_are_refused() -> None:
    assert parse_id_number(ID.translate(FULLWIDTH)).value == ID
    with pytest.raises(ValueError, match="18位"):
        parse_id_number(ID.translate(ARABIC_INDIC))
    with pytest.raises(ValueError, match="18位"):
        parse_id_number(ID[:5] + "\u0663" + ID[6:])  # one Arabic-Indic digit among ASCII ones


def test_mobiles_take_ascii_digits_only() -> None:
    assert parse_mobile(MOBILE.translate(FULLWIDTH)) == MOBILE
    assert parse_mobile("138-1234-5678") == MOBILE
    for bad in (MOBILE.translate(ARABIC_INDIC), "1381234567\u0669", "\u0661" + MOBILE[1:]):
        with pytest.raises(ValueError):
            parse_mobile(bad)


def test_the_same_id_number_cannot_register_again_in_other_digits(app, make_applicant) -> None:
    """The attack: fullwidth and Arabic-Indic copies of one ID number made three accounts."""
    who = make_applicant()
    taken = demo_student(who.index).id_number
    client = app.test_client()
    wide = taken.translate(FULLWIDTH)
    assert send_register_code(client, id_number=wide, id_number2=wide).status_code == 200
    twice = register(client, id_number=wide, id_number2=wide, code=sms_code(client, "138****5678"))
    assert twice.status_code == 409 and field_error(twice.get_data(as_text=True), "id_number") == "该身份证号已注册"
    arabic = taken.translate(ARABIC_INDIC)
    refused = send_register_code(client_at(app, "10.9.9.9"), id_number=arabic, id_number2=arabic)
    assert refused.status_code == 422 and "18位" in field_error(refused.get_data(as_text=True), "id_number")
    arabic_mobile = send_register_code(client_at(app, "10.9.9.8"), mobile=MOBILE.translate(ARABIC_INDIC))
    assert arabic_mobile.status_code == 422
    assert db.session.scalar(select(db.func.count(Account.id))) == 1


def test_log_in_with_fullwidth_digits_finds_the_account(app, make_applicant) -> None:
    who = make_applicant()
    number = demo_student(who.index).id_number.translate(FULLWIDTH)
    assert login(app.test_client(), number, who.password).status_code == 302


def test_step_schema_refuses_other_scripts_digits() -> None:
    schema = BasicInfoSchema()
    good = _basic_info_example()
    loaded = schema.load({**good, "mobile": good["mobile"].translate(FULLWIDTH), "postcode": "３０００７２"})
    assert loaded["mobile"] == good["mobile"] and loaded["postcode"] == "300072"
    for field, value in (
        ("mobile", good["mobile"].translate(ARABIC_INDIC)),
        ("postcode", "\u0663\u0660\u0660\u0660\u0667\u0662"),
        ("graduation_year", "\u0662\u0660\u0662\u0666"),  # int() would take it as 2026
        ("id_number", good["id_number"].translate(ARABIC_INDIC)),
    ):
        with pytest.raises(ValidationError) as caught:
            schema.load({**good, field: value})
        assert field in caught.value.messages


def test_admin_account_creation_uses_the_same_checks(app) -> None:
    for field, value in (("mobile", "13912345678".translate(ARABIC_INDIC)), ("id_number", "990101198001010011")):
        kwargs = {"id_number": "120104198001010011", "name": "张老师", "mobile": "13912345678", field: value}
        with pytest.raises(InvalidInput) as caught:
            admin.create_staff_account(
                db.session, vault(), BY, NOW, role="auditor", point_code="", today=TODAY, **kwargs
            )
        assert field in caught.value.fields


# ------------------------------------------------------------------ area codes


@pytest.mark.parametrize("code", sorted(PROVINCES))
def test_every_province_level_code_is_accepted(code: str) -> None:
    place = code + "0000" if code in {"81", "82", "83"} else code + "0101"
    assert parse_id_number(with_check_digit(place + "20030202001")).value[:2] == code


@pytest.mark.parametrize("place", ["990101", "000000", "100101", "240101", "700101", "910101", "120000"])
def test_unknown_area_codes_are_refused(place: str) -> None:
    with pytest.raises(ValueError, match="地区代码"):
        parse_id_number(with_check_digit(place + "20030202001"))


def test_province_table_covers_gb_t_2260() -> None:
    expected = {*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55), *range(61, 66)}
    assert {int(c) for c in PROVINCES} == expected | {71, 81, 82, 83}


# ------------------------------------------------------------------ open redirect

BYPASSES = [
    "//evil.example",
    "/\\evil.example",
    "/\t/evil.example",
    "/%09/evil.example",
    "/%2F%2Fevil.example",
    "/%252F%252Fevil.example",
    "https://evil.example",
    "javascript:alert(1)",
    "\\/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "/ /evil.example",
    "http:/evil.example",
    "///evil.example",
    "/%5Cevil.example",
]


@pytest.mark.parametrize("target", BYPASSES)
def test_safe_next_refuses_known_bypasses(target: str) -> None:
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ["/process", "/staff/?tab=materials", "/application/events/x#top", "/报名"])
def test_safe_next_keeps_paths_of_this_site(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize("query", ["/%09/evil.example", "/%2F%2Fevil.example", "%2F%5Cevil.example", "//evil"])
def test_log_in_never_redirects_off_site(app, make_applicant, query: str) -> None:
    """The attack: /login?next=/%09/evil.example answered Location: //evil.example."""
    who = make_applicant()
    client = app.test_client()
    token = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    data = {"login": demo_student(who.index).id_number, "password": who.password, "csrf_token": token}
    response = client.post(f"/login?next={query}", data=data)
    assert response.status_code == 302 and response.headers["Location"] == "/process"


# ------------------------------------------------------------------ registration probing


def test_register_code_checks_name_and_id_number_before_sending(app) -> None:
    client = app.test_client()
    bad_id = ID[:-1] + "9"
    for overrides, field in (({"name": "X"}, "name"), ({"id_number": bad_id, "id_number2": bad_id}, "id_number")):
        response = send_register_code(client, **overrides)
        assert response.status_code == 422 and field_error(response.get_data(as_text=True), field)
    assert send_register_code(client, id_number2="120102200311110031").status_code == 422
    assert db.session.scalars(select(SmsMessage)).all() == []


def test_registered_and_free_numbers_answer_alike_before_the_code(app, make_applicant) -> None:
    who = make_applicant()
    person = demo_student(who.index)
    answers = []
    for i, (number, mobile) in enumerate(((person.id_number, person.mobile), (ID, "13912345678"))):
        client = client_at(app, f"10.3.0.{i}")
        sent = send_register_code(client, id_number=number, id_number2=number, mobile=mobile)
        wrong = register(client, id_number=number, id_number2=number, mobile=mobile, code="000000")
        answers.append((sent.status_code, wrong.status_code, field_error(wrong.get_data(as_text=True), "id_number")))
    assert answers[0] == answers[1] == (200, 422, "")


def test_wrong_registration_codes_are_throttled_per_mobile(app) -> None:
    app.config["FAILURES_PER_ACCOUNT"] = "3/15minutes"
    client = app.test_client()
    send_register_code(client, mobile="13912341000")
    for _ in range(3):
        assert register(client, mobile="13912341000", code="000000").status_code == 422
    assert register(client, mobile="13912341000", code="000000").status_code == 429
    # Another number from the same client is not paused.
    send_register_code(client, mobile="13912341001")
    assert register(client, mobile="13912341001", code="000000").status_code == 422


# ------------------------------------------------------------------ Argon2


def test_new_hashes_use_the_owasp_parameters(app, make_applicant) -> None:
    who = make_applicant()
    account = db.session.get(Account, who.account_id)
    assert "$m=19456,t=2,p=1$" in account.password_hash


def test_log_in_rehashes_an_old_parameter_hash(app, make_applicant) -> None:
    who = make_applicant()
    account = db.session.get(Account, who.account_id)
    account.password_hash = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=2).hash(who.password)
    db.session.commit()
    assert login(app.test_client(), demo_student(who.index).id_number, who.password).status_code == 302
    db.session.expire_all()
    account = db.session.get(Account, who.account_id)
    assert "$m=19456,t=2,p=1$" in account.password_hash and check_password(account, who.password)


# ------------------------------------------------------------------ the log-in counter


def test_tries_are_reserved_before_the_check_and_the_lock_set_with_the_last(app, make_applicant, clock) -> None:
    who = make_applicant()
    numbers = [
        reserve_login_try(db.session, who.account_id, clock(), lock_after=3, lock_for=LOCK_FOR) for _ in range(5)
    ]
    assert numbers == [1, 2, 3, None, None]
    account = db.session.get(Account, who.account_id)
    db.session.refresh(account)
    assert account.locked_until is not None
    clock.advance(seconds=LOCK_FOR.total_seconds() + 1)
    assert reserve_login_try(db.session, who.account_id, clock(), lock_after=3, lock_for=LOCK_FOR) == 1


def test_a_right_password_after_the_lock_is_refused_until_it_expires(app, make_applicant, clock) -> None:
    who = make_applicant()
    number = demo_student(who.index).id_number
    for i in range(LOCK_AFTER):
        assert login(client_at(app, f"10.4.0.{i}"), number, "wrong-Pass1").status_code == 401
    locked = login(client_at(app, "10.4.1.1"), number, who.password)
    assert locked.status_code == 401 and "锁定" in locked.get_data(as_text=True)
    clock.advance(seconds=LOCK_FOR.total_seconds() + 1)
    assert login(client_at(app, "10.4.1.2"), number, who.password).status_code == 302
    db.session.expire_all()
    account = db.session.get(Account, who.account_id)
    assert account.failed_logins == 0 and account.locked_until is None


# ------------------------------------------------------------------ sessions


def test_cookie_flags_secure_outside_development(app, make_applicant) -> None:
    assert Config.SESSION_COOKIE_SECURE is True  # the default, unless SESSION_COOKIE_SECURE=0 (make run)
    assert (Config.SESSION_COOKIE_HTTPONLY, Config.SESSION_COOKIE_SAMESITE) == (True, "Lax")
    app.config["SESSION_COOKIE_SECURE"] = True
    who = make_applicant()
    client = app.test_client()
    token = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    data = {"login": demo_student(who.index).id_number, "password": who.password, "csrf_token": token}
    cookie = client.post("/login", data=data).headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize(("role", "minutes"), [("student", 30), ("staff", 15), ("admin", 15)])
def test_idle_sessions_end(app, make_applicant, clock, role: str, minutes: int) -> None:
    app.config.update(SESSION_IDLE_MINUTES=Config.SESSION_IDLE_MINUTES, SESSION_IDLE_MINUTES_STAFF=15)
    assert Config.SESSION_IDLE_MINUTES == 30 and Config.SESSION_IDLE_MINUTES_STAFF == 15
    who = make_applicant()
    account = db.session.get(Account, who.account_id)
    account.role = role
    db.session.commit()
    client = app.test_client()
    assert login(client, demo_student(who.index).id_number, who.password).status_code == 302
    page = {"student": "/process", "staff": "/staff/", "admin": "/admin/"}[role]
    for _ in range(3):  # activity keeps it alive, well past one idle period in total
        clock.advance(minutes=minutes - 1)
        assert client.get(page).status_code == 200
    clock.advance(minutes=minutes, seconds=1)
    gone = client.get(page)
    assert gone.status_code == 302 and gone.headers["Location"].startswith("/login")
    clock.advance(seconds=1)
    assert client.get(page).status_code == 302  # ended, not just skipped once


def test_the_session_cookie_is_re_sent_only_when_the_activity_time_moves(app, make_applicant, clock) -> None:
    """Pages within SEEN_STEP of the last recorded activity leave the session unchanged (no
    re-signed Set-Cookie per request); later ones record the new time."""
    app.config.update(SESSION_IDLE_MINUTES=30)
    who = make_applicant()
    client = app.test_client()
    assert login(client, demo_student(who.index).id_number, who.password).status_code == 302
    assert client.get("/process").status_code == 200  # the first page stores the form token
    clock.advance(seconds=SEEN_STEP - 5)
    quiet = client.get("/process")
    assert quiet.status_code == 200 and "Set-Cookie" not in quiet.headers
    clock.advance(seconds=10)
    moved = client.get("/process")
    assert moved.status_code == 200 and "session=" in moved.headers.get("Set-Cookie", "")


def test_idle_limit_is_measured_from_the_last_request(app, make_applicant, clock) -> None:
    app.config.update(SESSION_IDLE_MINUTES=30)
    who = make_applicant()
    client = app.test_client()
    assert login(client, demo_student(who.index).id_number, who.password).status_code == 302
    clock.advance(minutes=20)
    assert client.get("/process").status_code == 200
    clock.advance(minutes=25)  # 45 since log-in, 25 since the last request
    assert client.get("/process").status_code == 200
    clock.advance(minutes=31)
    assert client.get("/process").status_code == 302

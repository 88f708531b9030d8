"""Accounts in the browser: home page, 注册, 登录 limits, 找回密码, 找回用户名, the SMS dev page.

Driven through the Flask test client with real CSRF tokens scraped from the pages; SMS
codes are read from the development page, as a developer would.
"""

from __future__ import annotations

import logging
import re

import pytest
from sqlalchemy import select

from gzsb.accounts.service import check_password
from gzsb.bootstrap import vault
from gzsb.common.security import mask_mobile
from gzsb.extensions import db
from gzsb.models import Account, OtpCode, SmsMessage
from tests.support import demo_student

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
CODE = re.compile(r"验证码是(\d{6})")

NAME = "王小明"
ID = "120105200403150021"  # born 2004-03-15, 17th digit 2: 女
MOBILE = "13812345678"
PASSWORD = "Tj#gzsb2027x"


def csrf(client, path: str) -> str:
    match = TOKEN.search(client.get(path).get_data(as_text=True))
    assert match, f"{path} has no CSRF token"
    return match.group(1)


def client_at(app, address: str):
    """A browser at another client IP address."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def without_token(html: str) -> str:
    return TOKEN.sub('name="csrf_token" value=""', html)


def sms_code(client, masked: str) -> str:
    """The newest code sent to ``masked``, read from /dev/sms (newest first)."""
    page = client.get("/dev/sms").get_data(as_text=True)
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.DOTALL):
        if masked in row and CODE.search(row):
            return CODE.search(row).group(1)
    raise AssertionError(f"no code for {masked} on /dev/sms")


def field_error(html: str, field: str) -> str:
    """The Chinese error shown next to ``field`` (empty when there is none)."""
    match = re.search(rf'<small class="error" id="e-{field}">([^<]*)</small>', html)
    return match.group(1) if match else ""


def form(**overrides: str) -> dict[str, str]:
    data = {
        "name": NAME,
        "id_number": ID,
        "id_number2": ID,
        "mobile": MOBILE,
        "code": "",
        "password": PASSWORD,
        "password2": PASSWORD,
        "agree": "1",
    }
    data.update(overrides)
    return data


def send_register_code(client, **overrides: str):
    data = {**form(**overrides), "csrf_token": csrf(client, "/register")}
    return client.post("/register/code", data=data)


def register(client, **overrides: str):
    return client.post("/register", data={**form(**overrides), "csrf_token": csrf(client, "/register")})


def login(client, login_name: str, password: str):
    return client.post("/login", data={"login": login_name, "password": password, "csrf_token": csrf(client, "/login")})


# --------------------------------------------------------------------------- home page


def test_home_page_shows_the_window_from_the_flow_and_whether_it_is_open(app, clock) -> None:
    client = app.test_client()
    html = client.get("/").get_data(as_text=True)
    assert "2026年11月16日 09:00 至 2027年01月12日 17:00" in html  # the YAML's +08:00 times
    assert "报名进行中" in html
    assert 'href="/login">注册登录</a>' in html and 'href="/register">考生注册</a>' in html
    assert "通知公告" in html and "160元" in html
    assert "进入报名流程" not in html
    clock.advance(days=60)
    assert "报名已截止" in client.get("/").get_data(as_text=True)
    clock.advance(days=-400)
    assert "报名尚未开始" in client.get("/").get_data(as_text=True)


def test_logged_in_student_sees_the_way_into_the_process(app, make_applicant) -> None:
    who = make_applicant()
    client = app.test_client()
    assert login(client, demo_student(who.index).id_number, who.password).status_code == 302
    html = client.get("/").get_data(as_text=True)
    assert "进入报名流程" in html and "注册登录" not in html


# ----------------------------------------------------------------------------- 注册


def test_register_with_sms_code_logs_in_and_goes_to_the_process(app, caplog) -> None:
    client = app.test_client()
    with caplog.at_level(logging.INFO):
        sent = send_register_code(client)
        assert sent.status_code == 200
        page = sent.get_data(as_text=True)
        assert "验证码已发送至138****5678" in page
        # Everything typed is still there, the ID number's birth date and sex are shown.
        assert f'value="{NAME}"' in page and f'value="{ID}"' in page and f'value="{MOBILE}"' in page
        assert "出生日期：2004年03月15日" in page and "性别：女" in page
        assert PASSWORD not in page
        done = register(client, code=sms_code(client, "138****5678"))
        assert done.status_code == 302 and done.headers["Location"] == "/process"
    assert client.get("/process").status_code == 200
    account = db.session.scalars(select(Account)).one()
    assert account.name == NAME and account.role == "student"
    assert account.id_number_index == vault().index(ID) and vault().decrypt(account.mobile_enc) == MOBILE
    assert ID.encode() not in account.id_number_enc and account.password_hash.startswith("$argon2id$")
    assert check_password(account, PASSWORD)
    assert ID not in caplog.text and MOBILE not in caplog.text
    assert "138****5678" in caplog.text


def test_id_numbers_that_differ_keep_everything_typed(app) -> None:
    client = app.test_client()
    other = "120102200311110031"
    response = register(client, id_number2=other, code="123456")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(html, "id_number2") == "两次输入的身份证号不一致"
    assert field_error(html, "id_number") == ""
    for value in (NAME, ID, other, MOBILE, "123456"):
        assert f'value="{value}"' in html
    assert 'name="agree" value="1" checked' in html
    assert PASSWORD not in html  # passwords are the one thing not echoed
    assert db.session.scalars(select(Account)).all() == []


def test_wrong_check_digit_is_shown_at_the_field(app) -> None:
    client = app.test_client()
    bad = ID[:-1] + "9"
    html = register(client, id_number=bad, id_number2=bad, code="123456").get_data(as_text=True)
    assert field_error(html, "id_number") == "身份证号校验位不正确，请核对"
    assert f'value="{bad}"' in html and "出生日期：" not in html


def test_wrong_sms_code_keeps_values_and_counts_the_try(app) -> None:
    client = app.test_client()
    send_register_code(client)
    code = sms_code(client, "138****5678")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    response = register(client, code=wrong)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(html, "code") == "验证码错误，还可尝试4次"
    for value in (NAME, ID, MOBILE, wrong):
        assert f'value="{value}"' in html
    assert db.session.scalars(select(Account)).all() == []
    assert db.session.scalars(select(OtpCode)).one().attempts == 1
    assert register(client, code=code).status_code == 302


def test_code_must_be_requested_first(app) -> None:
    html = register(app.test_client(), code="123456").get_data(as_text=True)
    assert field_error(html, "code") == "请先获取短信验证码"


def test_duplicate_id_number_is_refused_at_the_field_once_the_code_is_verified(app, make_applicant) -> None:
    who = make_applicant()
    taken = demo_student(who.index).id_number
    client = app.test_client()
    # Without a right code the answer is the one any stranger gets (issue 14: no probing).
    blind = register(client, id_number=taken, id_number2=taken, code="123456")
    assert blind.status_code == 422 and field_error(blind.get_data(as_text=True), "id_number") == ""
    assert send_register_code(client, id_number=taken, id_number2=taken).status_code == 200
    response = register(client, id_number=taken, id_number2=taken, code=sms_code(client, "138****5678"))
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert field_error(html, "id_number") == "该身份证号已注册"
    assert f'value="{taken}"' in html and f'value="{NAME}"' in html
    assert len(db.session.scalars(select(Account)).all()) == 1


def test_mobile_bound_to_another_account_gets_a_notice_not_a_code(app, make_applicant) -> None:
    who = make_applicant()
    mobile = demo_student(who.index).mobile
    response = send_register_code(app.test_client(), mobile=mobile)
    # The page answers as for a free number; the owner's phone gets a notice without a code.
    assert response.status_code == 200 and f"验证码已发送至{mask_mobile(mobile)}" in response.get_data(as_text=True)
    (message,) = db.session.scalars(select(SmsMessage)).all()
    assert "该手机号已注册" in message.body and not re.search(r"[0-9]{6}", message.body)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"password": "abc12345", "password2": "abc12345"}, "password", "密码过于常见，请换一个"),
        ({"password": "Wang20040315", "password2": "Wang20040315"}, "password", "密码不能包含出生日期"),
        ({"password": "short1", "password2": "short1"}, "password", "密码长度应为8～128位"),
        ({"password2": "Tj#gzsb2027y"}, "password2", "两次输入的密码不一致"),
        ({"agree": ""}, "agree", "请阅读并同意《考生注册协议》"),
        ({"mobile": "2381234567"}, "mobile", "请输入11位手机号码"),
        ({"name": ""}, "name", "请输入姓名"),
        ({"code": "12a"}, "code", "请输入6位数字短信验证码"),
    ],
)
def test_each_field_error_is_in_chinese_next_to_its_field(app, overrides, field, message) -> None:
    html = register(app.test_client(), **{"code": "123456", **overrides}).get_data(as_text=True)
    assert message in field_error(html, field)


def test_register_code_resend_is_limited_per_sixty_seconds(app, clock) -> None:
    client = app.test_client()
    assert send_register_code(client).status_code == 200
    clock.advance(seconds=30)
    again = send_register_code(client)
    assert again.status_code == 429
    assert field_error(again.get_data(as_text=True), "code") == "操作过于频繁，请30秒后再获取验证码"
    assert f'value="{NAME}"' in again.get_data(as_text=True)
    assert len(db.session.scalars(select(SmsMessage)).all()) == 1


def test_sms_sends_per_client_are_capped(app, clock) -> None:
    app.config["SMS_PER_IP"] = "3/hour"
    client = app.test_client()
    for i in range(3):
        assert send_register_code(client, mobile=f"1391234000{i}").status_code == 200
    refused = send_register_code(client, mobile="13912340009")
    assert refused.status_code == 429 and "操作过于频繁" in refused.get_data(as_text=True)
    other = client_at(app, "10.1.2.3")
    assert send_register_code(other, mobile="13912340009").status_code == 200


def test_posts_without_csrf_token_are_refused(app) -> None:
    client = app.test_client()
    assert client.post("/register", data=form(code="123456")).status_code == 400
    assert client.post("/register/code", data=form()).status_code == 400
    assert client.post("/recover/password/code", data={"id_number": ID, "mobile": MOBILE}).status_code == 400
    assert client.post("/recover/username", data={"id_number": ID, "name": NAME}).status_code == 400


# ------------------------------------------------------------------------------- 登录


def test_login_failures_from_one_client_are_slowed_down(app, make_applicant) -> None:
    app.config["FAILURES_PER_IP"] = "10/15minutes"  # the generous per-IP ceiling, made small
    who = make_applicant()
    number = demo_student(who.index).id_number
    attacker = client_at(app, "203.0.113.9")
    # Spraying many accounts: no single account reaches its own budget, the IP reaches its ceiling.
    for i in range(10):
        assert login(attacker, f"1390000{i:04d}", "Guess#2027").status_code == 401
    blocked = login(attacker, number, who.password)
    assert blocked.status_code == 429
    assert "操作过于频繁，请15分钟后再试" in blocked.get_data(as_text=True)
    assert f'value="{number}"' in blocked.get_data(as_text=True)
    # Another client is not affected.
    assert login(client_at(app, "198.51.100.7"), number, who.password).status_code == 302


def test_one_client_hammering_an_account_does_not_lock_out_its_neighbours(app, make_applicant) -> None:
    # A school's NAT: the attacker and the honest students share one address.
    victim, neighbour = make_applicant(), make_applicant()
    school = "192.0.2.10"
    victim_number = demo_student(victim.index).id_number
    for _ in range(12):
        login(client_at(app, school), "13900000123", "Guess#2027")  # one account name, over and over
    assert login(client_at(app, school), "13900000123", "Guess#2027").status_code == 429
    # The same address logs other accounts in; the hammered name is paused for everyone.
    assert login(client_at(app, school), demo_student(neighbour.index).id_number, neighbour.password).status_code == 302
    assert login(client_at(app, school), victim_number, victim.password).status_code == 302
    assert login(client_at(app, "198.51.100.8"), "13900000123", "Guess#2027").status_code == 429


def test_the_account_budget_ignores_how_the_name_was_typed(app) -> None:
    app.config["FAILURES_PER_ACCOUNT"] = "3/15minutes"
    client = app.test_client()
    wide = "13900000124".translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})  # full-width digits
    for typed in ("13900000124", wide, " 13900000124 "):
        assert login(client, typed, "Guess#2027").status_code == 401
    assert login(client, "13900000124", "Guess#2027").status_code == 429


def test_per_account_lock_still_holds_across_clients(app, make_applicant) -> None:
    who = make_applicant()
    number = demo_student(who.index).id_number
    for i in range(5):
        login(client_at(app, f"10.0.0.{i}"), number, "wrong")
    locked = login(client_at(app, "10.0.0.99"), number, who.password)
    assert locked.status_code == 401 and "锁定" in locked.get_data(as_text=True)


# --------------------------------------------------------------------------- 找回密码


def reset_send(client, id_number: str, mobile: str):
    token = csrf(client, "/recover/password")
    return client.post("/recover/password/code", data={"id_number": id_number, "mobile": mobile, "csrf_token": token})


def reset(client, id_number: str, mobile: str, code: str, password: str = "New#gzsb2027"):
    token = csrf(client, "/recover/password")
    data = {"id_number": id_number, "mobile": mobile, "code": code, "password": password, "password2": password}
    return client.post("/recover/password", data={**data, "csrf_token": token})


def test_recovery_answers_the_same_for_known_and_unknown_accounts(app, clock) -> None:
    from gzsb.accounts.service import create_account

    client = app.test_client()
    # Nobody has this ID number and mobile yet.
    unknown = reset_send(client, ID, MOBILE)
    unknown_again = reset_send(client, ID, MOBILE)  # within 60 s
    unknown_final = reset(client, ID, MOBILE, "000000")
    assert db.session.scalars(select(SmsMessage)).all() == []
    # Now they belong to an account: the same three requests, a minute later.
    create_account(db.session, vault(), name=NAME, id_number=ID, password=PASSWORD, mobile=MOBILE)
    db.session.commit()
    clock.advance(seconds=61)
    known = reset_send(client, ID, MOBILE)
    known_again = reset_send(client, ID, MOBILE)
    code = sms_code(client, "138****5678")
    known_final = reset(client, ID, MOBILE, "000000" if code != "000000" else "000001")
    for a, b in ((unknown, known), (unknown_again, known_again), (unknown_final, known_final)):
        assert a.status_code == b.status_code
        assert without_token(a.get_data(as_text=True)) == without_token(b.get_data(as_text=True))
    assert unknown.status_code == 200 and "如果身份证号和手机号与注册信息一致" in unknown.get_data(as_text=True)
    assert unknown_again.status_code == 429
    assert unknown_final.status_code == 422
    assert len(db.session.scalars(select(SmsMessage)).all()) == 1  # only the known account got an SMS


def test_mismatched_mobile_gets_no_sms_but_the_same_answer(app, make_applicant) -> None:
    who = make_applicant()
    number = demo_student(who.index).id_number
    client = client_at(app, "10.0.0.1")
    right = reset_send(client, number, demo_student(who.index).mobile)
    wrong = reset_send(client_at(app, "10.0.0.2"), number, "13999999999")
    assert right.status_code == wrong.status_code == 200
    notice = re.compile(r'<p class="notice ok" role="status">([^<]*)</p>')
    assert notice.search(right.get_data(as_text=True)).group(1) == notice.search(wrong.get_data(as_text=True)).group(1)
    (message,) = db.session.scalars(select(SmsMessage)).all()
    assert vault().decrypt(message.to_enc) == demo_student(who.index).mobile


def test_password_reset_ends_old_sessions(app, make_applicant, clock) -> None:
    who = make_applicant()
    student = demo_student(who.index)
    old = app.test_client()
    assert login(old, student.id_number, who.password).status_code == 302
    cookie = old.get_cookie("session").value
    assert old.get("/api/application").status_code == 200

    helper = app.test_client()
    assert reset_send(helper, student.id_number, student.mobile).status_code == 200
    code = sms_code(helper, student.mobile[:3] + "****" + student.mobile[-4:])
    done = reset(helper, student.id_number, student.mobile, code)
    assert done.status_code == 200 and "密码已重置" in done.get_data(as_text=True)

    stale = app.test_client()
    stale.set_cookie("session", cookie)
    assert stale.get("/api/application").status_code == 401
    assert stale.get("/process").status_code == 302
    assert login(app.test_client(), student.id_number, who.password).status_code == 401
    assert login(app.test_client(), student.mobile, "New#gzsb2027").status_code == 302
    # The code was single use, and the owner got a notice of the change.
    assert "已失效" in field_error(
        reset(helper, student.id_number, student.mobile, code).get_data(as_text=True), "code"
    )
    bodies = [m.body for m in db.session.scalars(select(SmsMessage))]
    assert any("密码已重置" in b for b in bodies)


def test_reset_code_works_only_for_the_account_it_was_sent_for(app, make_applicant) -> None:
    first, second = make_applicant(), make_applicant()
    mine = demo_student(first.index)
    victim = demo_student(second.index)
    client = app.test_client()
    reset_send(client, mine.id_number, mine.mobile)
    code = sms_code(client, mine.mobile[:3] + "****" + mine.mobile[-4:])
    response = reset(client, victim.id_number, mine.mobile, code)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "code") == "验证码已失效，请重新获取"
    db.session.expire_all()
    victim_account = db.session.scalars(
        select(Account).where(Account.id_number_index == vault().index(victim.id_number))
    ).one()
    assert check_password(victim_account, second.password)


def test_reset_refuses_a_weak_new_password_without_spending_the_code(app, make_applicant) -> None:
    who = make_applicant()
    student = demo_student(who.index)
    client = app.test_client()
    reset_send(client, student.id_number, student.mobile)
    code = sms_code(client, student.mobile[:3] + "****" + student.mobile[-4:])
    weak = reset(client, student.id_number, student.mobile, code, password="password1")
    assert weak.status_code == 422 and field_error(weak.get_data(as_text=True), "password") == "密码过于常见，请换一个"
    assert f'value="{code}"' in weak.get_data(as_text=True)
    assert reset(client, student.id_number, student.mobile, code).status_code == 200


# ------------------------------------------------------------------------- 找回用户名


def recover_username(client, id_number: str, name: str):
    token = csrf(client, "/recover/username")
    return client.post("/recover/username", data={"id_number": id_number, "name": name, "csrf_token": token})


def test_recover_username_shows_masked_id_and_mobile(app, make_applicant) -> None:
    who = make_applicant()
    student = demo_student(who.index)
    html = recover_username(app.test_client(), student.id_number, student.name).get_data(as_text=True)
    assert student.id_number[:6] + "********" + student.id_number[-4:] in html
    assert student.mobile[:3] + "****" + student.mobile[-4:] in html
    assert student.mobile not in html
    # The typed ID number is back in the (hidden) form only when nothing was found.
    assert f'value="{student.id_number}"' not in html


def test_recover_username_gives_the_same_vague_answer_for_any_miss(app, make_applicant) -> None:
    who = make_applicant()
    student = demo_student(who.index)
    client = app.test_client()
    wrong_name = recover_username(client, student.id_number, "张三")
    nobody = recover_username(client, ID, "张三")
    for response in (wrong_name, nobody):
        assert response.status_code == 200
        assert "未找到与所填信息一致的账号" in response.get_data(as_text=True)
        html = response.get_data(as_text=True)
        # Neither the mobile nor its masked form (the ID number typed may share its digits).
        assert student.mobile not in html and mask_mobile(student.mobile) not in html
    bad = recover_username(client, ID[:-1] + "9", "张三")
    assert field_error(bad.get_data(as_text=True), "id_number") == "身份证号校验位不正确，请核对"


def test_recover_username_misses_are_rate_limited_per_id_number(app, make_applicant) -> None:
    who = make_applicant()
    student = demo_student(who.index)
    client = app.test_client()
    for _ in range(10):
        recover_username(client, ID, "张三")
    blocked = recover_username(client, ID, "李四")
    assert blocked.status_code == 429 and "操作过于频繁" in blocked.get_data(as_text=True)
    # The same client may still look up another ID number (a shared address is not one person).
    assert recover_username(client, student.id_number, student.name).status_code == 200


# ------------------------------------------------------------------------- SMS dev page


def test_dev_sms_page_lists_masked_messages_and_is_hidden_in_production(app) -> None:
    client = app.test_client()
    send_register_code(client)
    html = client.get("/dev/sms").get_data(as_text=True)
    assert "138****5678" in html and MOBILE not in html and CODE.search(html)
    app.config["TESTING"] = False
    try:
        assert client.get("/dev/sms").status_code == 404
        app.config["SMS_DEV_PAGE"] = True
        assert client.get("/dev/sms").status_code == 200
    finally:
        app.config["TESTING"], app.config["SMS_DEV_PAGE"] = True, False

"""A lost session loses nothing (issue 16), in a real browser on a desktop and a phone.

Half of 基本信息 is typed, 退出 is pressed in another tab, the first tab submits: a Chinese
page in the product's layout (no Werkzeug "Bad Request") offers 重新登录; logging in again
lands on the same form with the entries restored from the browser's draft, which never
holds the password, and goes once the form is submitted. On the way: the 流程页面 with the
student's name, its status text and one button. Screenshots: test-artifacts/e2e/<viewport>/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from gzsb.bootstrap import engine
from gzsb.cli.demo import DEMO_PASSWORD, demo_student
from gzsb.extensions import db
from tests.e2e.conftest import LiveServer
from tests.e2e.support import Screen, assert_fits, log_in
from tests.support import identity_uploads, new_applicant, to_confirming

pytestmark = pytest.mark.browser

# Demo students of their own (the live server is shared by the module).
INDEX = {"desktop": 71, "phone": 72}
TYPED = {"#f-address": "天津市河东区十一经路1号", "#f-postcode": "300171"}
CHOSEN = {"#f-ethnicity": "回族", "#f-political_status": "群众", "#f-category": "普通", "#f-confirmation_point": "NK01"}
DRAFTS = "Object.keys(localStorage).filter(k => k.startsWith('gzsb-draft:'))"


def at_basic_info(server: LiveServer, index: int) -> None:
    with server.app.app_context():
        who = new_applicant(index)
        engine().fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
        db.session.remove()


def test_a_lost_session_keeps_what_was_typed(screen: Screen, live_server: LiveServer) -> None:
    page = screen.page
    student = demo_student(INDEX[screen.viewport])
    at_basic_info(live_server, INDEX[screen.viewport])
    log_in(screen, student.id_number, DEMO_PASSWORD)

    # ---------------------------------------------------------------- 流程页面
    expect(page.locator("#student-name")).to_have_text(student.name)
    expect(page.locator("#journey-status")).to_have_text("请填写基本信息")
    expect(page.locator("main a.button")).to_have_count(1)
    expect(page.locator("main a.button")).to_have_text("去填写")
    expect(page.locator(".deadlines")).to_contain_text("2027年01月12日 17:00")
    assert_fits(screen)
    screen.shot("process-page-truth")
    screen.press(page.locator("main a.button"))

    # ---------------------------------------------------------------- 基本信息, half filled
    expect(page.locator("h1")).to_have_text("填写基本信息")
    expect(page.locator("#f-college")).to_have_value("天津职业大学")  # from the 学籍/学历 record
    expect(page.locator("#registry-prefill")).to_be_visible()
    for selector, text in TYPED.items():
        page.fill(selector, text)
    for selector, value in CHOSEN.items():
        page.select_option(selector, value)

    # 退出 in another tab of the same browser.
    other = page.context.new_page()
    other.goto("/process")
    other.get_by_role("button", name="退出").click()
    other.wait_for_url("**/")
    other.close()

    screen.press(page.get_by_role("button", name="提交并继续"))
    expect(page.locator("#session-expired")).to_be_visible()
    expect(page.locator("p.error")).to_have_text("登录已失效，请重新登录")
    assert "Bad Request" not in page.content() and "CSRF" not in page.content()
    assert_fits(screen)
    screen.shot("session-lost")

    # ---------------------------------------------------------------- 重新登录 → the same form
    screen.press(page.locator("#relogin"))
    page.wait_for_url(re.compile(r"/login\?next=/application$"))
    page.fill("#f-login", student.id_number)
    page.fill("#f-password", DEMO_PASSWORD)
    screen.press(page.get_by_role("button", name="登录报名"))
    page.wait_for_url("**/application")
    expect(page.locator("h1")).to_have_text("填写基本信息")
    expect(page.locator("#draft-restored")).to_be_visible()
    for selector, text in TYPED.items():
        expect(page.locator(selector)).to_have_value(text)
    for selector, value in CHOSEN.items():
        expect(page.locator(selector)).to_have_value(value)
    stored = page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    assert DEMO_PASSWORD not in stored and student.id_number not in stored, stored
    assert_fits(screen)
    screen.shot("draft-restored")

    # ---------------------------------------------------------------- submitted: the draft goes
    screen.press(page.get_by_role("button", name="提交并继续"))
    expect(page.locator("h1")).to_have_text("填写志愿信息")
    # drafts.js (deferred) removes it once the page has run it; waiting fails after the timeout.
    page.wait_for_function(f"!{DRAFTS}.some(k => k.endsWith(':basic_info'))")


WAITING_INDEX = {"desktop": 73, "phone": 74}


def test_own_data_whole_and_a_waiting_process_page(screen: Screen, live_server: LiveServer) -> None:
    """信息确认 shows the student's own ID number and mobile whole; while the 确认点 checks
    the identity by hand the 流程页面 says so and offers only 查看认证进度."""
    page = screen.page
    index = WAITING_INDEX[screen.viewport]
    student = demo_student(index)
    with live_server.app.app_context():
        who = new_applicant(index)
        to_confirming(engine(), who)
        db.session.remove()
    log_in(screen, student.id_number, DEMO_PASSWORD)
    page.goto("/application")
    expect(page.locator("#own-id-number")).to_have_text(student.id_number)
    expect(page.locator("#own-mobile")).to_have_text(student.mobile)
    assert_fits(screen)
    screen.shot("confirm-own-data-whole")

    with live_server.app.app_context():
        engine().fire(who.application_id, "confirm_info", who.actor, {})
        engine().fire(
            who.application_id, "request_manual_identity", who.actor, {**identity_uploads(who), "note": "无身份证"}
        )
        db.session.remove()
    page.goto("/process")
    expect(page.locator("#journey-status")).to_have_text("已提交人工认证，等待确认点工作人员核验")
    expect(page.locator("main a.button")).to_have_count(1)
    expect(page.locator("main a.button")).to_have_text("查看认证进度")
    expect(page.locator("li.stage.waiting .status")).to_have_text("等待确认点人工认证")
    assert_fits(screen)
    screen.shot("process-page-waiting")

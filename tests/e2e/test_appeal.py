"""账号申诉 in a real browser, on a desktop and a phone: an invalid ID number gets no SMS
code, the owner verifies the mobile, sends both sides of the ID card and a photo holding it,
reads the case number and the promised date, and an admin decides from the queue (the
desktop case is rejected with a reason, the phone case approved). Screenshots of every page:
test-artifacts/e2e/<viewport>/."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from gzsb.accounts.service import create_account
from gzsb.bootstrap import vault
from gzsb.cli.demo import add_demo_student, demo_student, id_number
from gzsb.extensions import db
from tests.e2e.support import Screen, assert_fits, log_in, sms_code
from tests.support import PASSWORD_HASH

pytestmark = pytest.mark.browser

CASES = {
    "desktop": (demo_student(83), "13911110083", "12010419800101583"),
    "phone": (demo_student(84), "13911110084", "12010419800101584"),
}
PASSWORD = "Demo@2026gzsb"


def card(color: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (428, 270), (245, 245, 240))
    ImageDraw.Draw(image).rectangle((10, 10, 417, 259), outline=color, width=8)
    out = io.BytesIO()
    image.save(out, "JPEG")
    return out.getvalue()


def test_the_owner_appeals_and_an_admin_decides(screen: Screen, live_server) -> None:
    student, mobile, admin_first = CASES[screen.viewport]
    admin_number = id_number(admin_first)
    with live_server.app.app_context():
        add_demo_student(db.session, vault(), student, password_hash=PASSWORD_HASH)  # the squatter
        create_account(
            db.session, vault(), name="管理员", id_number=admin_number, password_hash=PASSWORD_HASH, role="admin"
        )
        db.session.commit()
        db.session.remove()
    page = screen.page

    page.goto("/appeal")
    page.fill("#f-name", "王真人")
    page.fill("#f-id_number", student.id_number[:-1] + ("0" if student.id_number[-1] != "0" else "1"))
    page.fill("#f-mobile", mobile)
    screen.press(page.get_by_role("button", name="获取验证码"))
    expect(page.locator("#e-id_number")).to_be_visible()
    screen.shot("appeal-invalid-id")
    if screen.is_phone:
        assert_fits(screen)

    page.fill("#f-id_number", student.id_number)
    screen.press(page.get_by_role("button", name="获取验证码"))
    expect(page.locator(".notice.ok")).to_contain_text("验证码已发送")
    page.fill("#f-code", sms_code(page, mobile))
    screen.shot("appeal-start")
    screen.press(page.get_by_role("button", name="下一步"))
    page.wait_for_url("**/appeal/images")
    for field, color in (("id_front", (200, 0, 0)), ("id_back", (0, 150, 0)), ("id_holding", (0, 0, 200))):
        page.set_input_files(
            f"#f-{field}", files=[{"name": f"{field}.jpg", "mimeType": "image/jpeg", "buffer": card(color)}]
        )
    screen.shot("appeal-images")
    if screen.is_phone:
        assert_fits(screen)
    screen.press(page.get_by_role("button", name="提交申诉"))
    expect(page.locator("h2", has_text="申诉已提交")).to_be_visible()
    number = page.locator("#case-number").inner_text()
    assert re.fullmatch(r"SS\d{14}", number) and "工作日" in page.locator("#due").inner_text()
    screen.shot("appeal-submitted")

    page.goto("/appeal/status")
    page.fill("#f-number", number)
    page.fill("#f-mobile", mobile)
    screen.press(page.get_by_role("button", name="查询"))
    expect(page.locator("#status")).to_have_text("审核中")
    screen.shot("appeal-status-pending")

    log_in(screen, admin_number, PASSWORD, landing="**/admin/**")
    page.goto("/appeals/queue")
    expect(page.locator("table.appeal-queue")).to_contain_text(number)
    screen.shot("appeal-queue")
    page.goto(f"/appeals/{number}")
    screen.shot("appeal-case")
    if screen.is_phone:
        screen.press(page.locator("#approve"))
        expect(page.locator("#case-status")).to_have_text("申诉通过")
        expected = "申诉通过"
    else:
        page.fill("#f-reason", "手持身份证照片中证件号码不清晰")
        screen.press(page.locator("#reject"))
        expect(page.locator("#case-status")).to_have_text("申诉未通过")
        expected = "申诉未通过"
    screen.shot("appeal-decided")

    page.goto("/appeal/status")
    page.fill("#f-number", number)
    page.fill("#f-mobile", mobile)
    screen.press(page.get_by_role("button", name="查询"))
    expect(page.locator("#status")).to_have_text(expected)
    if not screen.is_phone:
        expect(page.locator("#reason")).to_have_text("手持身份证照片中证件号码不清晰")
    screen.shot("appeal-status-decided")
    if screen.is_phone:
        assert_fits(screen)

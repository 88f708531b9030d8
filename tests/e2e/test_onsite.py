"""现场确认 and named materials in a real browser (issue 16), on a desktop and a phone viewport:

- a student waiting for the manual identity check sees on the 流程页面 that they must come to
  their 确认点, opens the 现场确认 page (address, hours, what to bring, slots by day, a full
  slot greyed out), books a slot and sees it there and on the waiting page;
- the 确认点's staff see the day's appointments with the student's name;
- the admin's slot page of the 确认点;
- a 退役士兵 without a 学籍 record on the 上传审核 page: one named slot per document.

Screenshots: test-artifacts/e2e/<viewport>/NN-onsite-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from gzsb.accounts.service import create_account
from gzsb.admin.service import Operator
from gzsb.bootstrap import engine, vault
from gzsb.cli.demo import DEMO_PASSWORD, demo_student
from gzsb.extensions import db
from gzsb.models import Application, ConfirmationPoint
from gzsb.onsite import service as onsite
from tests.admin.support import Person, person
from tests.e2e.support import LiveServer, Screen, assert_fits, log_in
from tests.review_support import to_materials_pending, to_materials_review
from tests.support import PASSWORD_HASH, new_applicant, to_manual_identity

pytestmark = pytest.mark.browser

DAY = date(2026, 12, 10)
# Each viewport has its own students (the live server is shared by the module).
STUDENTS = {"desktop": (41, 42, 43), "phone": (44, 45, 46)}  # waiting, crowd, 退役士兵 without 学籍
REVIEWED = {"desktop": 47, "phone": 48}  # a 退役士兵 without 学籍 whose materials wait for review


@pytest.fixture(scope="module")
def people(live_server: LiveServer) -> Iterator[dict[str, Person]]:
    """The 确认点 NK01 with its address, hours and slots (09:00 for two, 09:30 for one, taken
    by someone else); a staff member of NK01 and an admin."""
    staff, admin = person("周老师"), person("吴管理")
    with live_server.app.app_context():
        point = db.session.scalars(select(ConfirmationPoint).where(ConfirmationPoint.code == "NK01")).one()
        point.address = "天津市南开区红旗南路1号 招生考试中心一楼大厅"
        point.office_hours = "工作日 9:00-11:30，14:00-17:00"
        for who, role in ((staff, "staff"), (admin, "admin")):
            create_account(
                db.session, vault(), name=who.name, id_number=who.id_number, password_hash=PASSWORD_HASH,
                mobile=who.mobile, role=role, confirmation_point_id=point.id if role == "staff" else None,
            )  # fmt: skip
        clock = live_server.clock.now
        onsite.add_slots(db.session, Operator("e2e"), clock, point, day=DAY, first=time(9), last=time(9, 30),
                         minutes=30, capacity=2)  # fmt: skip
        onsite.add_slots(db.session, Operator("e2e"), clock, point, day=DAY, first=time(9, 30), last=time(10),
                         minutes=30, capacity=1)  # fmt: skip
        onsite.add_slots(db.session, Operator("e2e"), clock, point, day=date(2026, 12, 11), first=time(14),
                         last=time(16), minutes=30, capacity=10)  # fmt: skip
        db.session.commit()
        db.session.remove()
    yield {"staff": staff, "admin": admin}


def prepare(server: LiveServer, viewport: str) -> str:
    """The viewport's students, driven through the engine: one waiting for the manual identity
    check, one who took the 09:30 slot's only seat, one 退役士兵 without a 学籍 record at 上传审核."""
    waiting, crowd, veteran = STUDENTS[viewport]
    with server.app.app_context():
        eng = engine()
        for index in (waiting, crowd):
            to_manual_identity(eng, new_applicant(index))
        taker = new_applicant(crowd + 100)
        to_manual_identity(eng, taker)
        nk01 = db.session.scalars(select(ConfirmationPoint.id).where(ConfirmationPoint.code == "NK01")).one()
        late = onsite.point_slots(db.session, nk01, *onsite.beijing_day_bounds(DAY))
        slot_0930 = next(s for s in late if s.text.endswith("09:30–10:00"))
        if slot_0930.remaining:
            eng.fire(taker.application_id, "book_onsite", taker.actor, {"slot": slot_0930.slot.id})
        to_materials_pending(eng, new_applicant(veteran, category="退役士兵", in_registry=False))
        reviewed = new_applicant(REVIEWED[viewport], category="退役士兵", in_registry=False)
        to_materials_review(eng, reviewed)
        uid = db.session.get(Application, reviewed.application_id).uid
        db.session.commit()
        db.session.remove()
    return uid


def test_student_books_a_slot_staff_see_the_day(
    screen: Screen, browser, live_server: LiveServer, people: dict[str, Person]
) -> None:
    reviewed_uid = prepare(live_server, screen.viewport)
    waiting, _crowd, veteran = (demo_student(i) for i in STUDENTS[screen.viewport])
    page = screen.page

    # ------------------------------------------------------------------- the student books
    log_in(screen, waiting.id_number, DEMO_PASSWORD)
    notice = page.locator(".onsite-notice")
    expect(notice).to_contain_text("您需要到确认点现场确认")
    screen.shot("onsite-process")
    screen.press(notice.get_by_role("link", name="预约现场确认"))
    expect(page.locator("h1")).to_have_text("现场确认预约")
    expect(page.locator("#onsite-point")).to_contain_text("天津市南开区红旗南路1号")
    expect(page.locator("#onsite-point")).to_contain_text("工作日 9:00-11:30")
    expect(page.locator("#onsite-bring")).to_contain_text("本人二代居民身份证原件")
    full = page.locator("li.slot.full")
    expect(full).to_contain_text("已约满")
    expect(full.locator("input")).to_be_disabled()
    assert_fits(screen)
    screen.shot("onsite-slots")
    first = page.locator("li.slot", has_text="09:00–09:30").first
    screen.press(first.locator("label"))
    screen.press(page.get_by_role("button", name="预约"))
    expect(page.locator(".flash")).to_contain_text("预约成功")
    expect(page.locator("#onsite-booking")).to_contain_text("2026年12月10日 09:00–09:30")
    expect(page.locator("li.slot.mine")).to_contain_text("已预约")
    assert_fits(screen)
    screen.shot("onsite-booked")
    page.goto("/application")
    expect(page.locator(".onsite-notice")).to_contain_text("已预约 2026年12月10日 09:00–09:30")
    screen.shot("onsite-manual-identity-page")

    # --------------------------------------------------------------- staff: the day's list
    page.context.clear_cookies()
    log_in(screen, people["staff"].id_number, DEMO_PASSWORD, landing="**/staff/")
    screen.press(page.get_by_role("link", name="现场确认预约"))
    page.goto(f"/staff/onsite?day={DAY.isoformat()}")
    table = page.locator("#onsite-day")
    expect(table.locator("tr", has_text=waiting.name)).to_contain_text("09:00–09:30")
    expect(table.locator("tr", has_text=waiting.name)).to_contain_text("人工身份认证")
    assert_fits(screen)
    screen.shot("onsite-staff-day")
    # The materials of a 退役士兵 under review, by document name beside the 证件照.
    page.goto(f"/staff/applications/{reviewed_uid}")
    named = page.locator("#s-materials").locator("xpath=..").locator("ul.thumbs .caption strong")
    expect(named).to_have_text(["证件照", "退役证", "学历认证报告"])
    screen.shot("onsite-staff-named-materials")

    # ------------------------------------------------------------------ admin: the slots
    page.context.clear_cookies()
    log_in(screen, people["admin"].id_number, DEMO_PASSWORD, landing="**/admin/")
    page.goto("/admin/points")
    screen.press(page.locator("tr", has_text="NK01").get_by_role("link", name="预约时段"))
    expect(page.locator("h1")).to_contain_text("现场确认时段")
    expect(page.locator("#slots")).to_contain_text("09:00–09:30")
    screen.shot("onsite-admin-slots")

    # ------------------------------------------------- a 退役士兵 at 上传审核: named documents
    page.context.clear_cookies()
    log_in(screen, veteran.id_number, DEMO_PASSWORD)
    page.goto("/application")
    expect(page.locator("h1")).to_have_text("上传审核材料")
    slots = page.locator("li.doc-slot h3")
    expect(slots).to_have_count(3)
    expect(slots.nth(0)).to_contain_text("退役证")
    expect(slots.nth(1)).to_contain_text("学历认证报告")
    expect(slots.nth(2)).to_contain_text("毕业证书")
    expect(page.get_by_role("button", name="提交审核")).to_be_disabled()
    assert_fits(screen)
    screen.shot("onsite-materials-named")

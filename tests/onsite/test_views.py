"""现场确认 through the pages: the student books a slot and sees it, staff see the day's
appointments, a full slot refuses in Chinese, change and cancel before the slot, the admin
opens slots and sets capacities (pages and `flask points slots`)."""

from __future__ import annotations

import re
from datetime import date, time

from sqlalchemy import select

from gzsb.admin.service import Operator
from gzsb.extensions import db
from gzsb.models import AdminAction, ConfirmationPoint, HistoryEvent, OnsiteBooking, OnsiteSlot
from gzsb.onsite import service as onsite
from tests.admin.support import add_account, client_of
from tests.review_support import fresh, make_staff, to_materials_pending
from tests.staff.test_views import staff_client
from tests.support import csrf_token, log_in_student, to_manual_identity, to_verified

DAY = date(2026, 12, 10)  # the clock stands at 2026-12-01 10:00 Beijing time


def nk01() -> ConfirmationPoint:
    point = db.session.scalars(select(ConfirmationPoint).where(ConfirmationPoint.code == "NK01")).one()
    point.address, point.office_hours = "天津市南开区红旗南路1号", "工作日 9:00-11:30，14:00-17:00"
    db.session.commit()
    return point


def open_slots(clock, capacity: int = 2, first: time = time(9), last: time = time(10)) -> list[int]:
    made = onsite.add_slots(
        db.session, Operator("test"), clock.now, nk01(), day=DAY, first=first, last=last, minutes=30, capacity=capacity
    )
    db.session.commit()
    return [s.id for s in made]


def student_client(app, who):
    client = app.test_client()
    log_in_student(client, who)
    return client


def book(client, slot_id: int):
    token = csrf_token(client, "/application/onsite")
    version = re.search(r'name="version" value="(\d+)"', client.get("/application/onsite").get_data(as_text=True))
    form = {"csrf_token": token, "slot": slot_id, "version": version.group(1) if version else ""}
    return client.post("/application/onsite/book", data=form)


def cancel(client):
    token = csrf_token(client, "/application/onsite")
    return client.post("/application/onsite/cancel", data={"csrf_token": token})


def test_a_booked_slot_shows_for_the_student_and_for_staff(app, make_applicant, eng, clock) -> None:
    who = make_applicant()
    to_manual_identity(eng, who)
    first, second = open_slots(clock)
    client = student_client(app, who)

    waiting = client.get("/application").get_data(as_text=True)
    assert "您需要到确认点现场确认，请预约时段" in waiting and "/application/onsite" in waiting
    page = client.get("/application/onsite").get_data(as_text=True)
    assert "您的网上身份认证未能自动通过" in page
    assert "天津市南开区红旗南路1号" in page and "工作日 9:00-11:30，14:00-17:00" in page
    assert "本人二代居民身份证原件" in page and "尚未预约" in page
    assert "12月10日（周四）" in page and "09:00–09:30" in page and "余2/2" in page

    assert book(client, first).status_code == 302
    page = client.get("/application/onsite").get_data(as_text=True)
    assert "预约成功" in page and "2026年12月10日 09:00–09:30" in page and "已预约" in page
    assert "已预约 2026年12月10日 09:00–09:30" in client.get("/application").get_data(as_text=True)
    event = db.session.scalars(select(HistoryEvent).where(HistoryEvent.event == "book_onsite")).one()
    assert event.from_state == event.to_state == "manual_identity" and f'"slot":{first}' in event.payload

    staff = staff_client(app, make_staff())
    day = staff.get(f"/staff/onsite?day={DAY.isoformat()}").get_data(as_text=True)
    assert "12月10日（周四）" in day and "09:00–09:30" in day and "人工身份认证" in day
    assert fresh(who.application_id).account.name in day
    item = staff.get(f"/staff/applications/{fresh(who.application_id).uid}").get_data(as_text=True)
    assert '<dd id="onsite-appointment">2026年12月10日 09:00</dd>' in item
    other_day = staff.get("/staff/onsite?day=2026-12-11").get_data(as_text=True)
    assert "当天没有考生预约现场确认" in other_day
    # Another point's staff do not see it.
    other = staff_client(app, make_staff("HX01", "李老师")).get(f"/staff/onsite?day={DAY.isoformat()}")
    assert fresh(who.application_id).account.name not in other.get_data(as_text=True)

    # Change to the other slot: the first seat goes back.
    assert book(client, second).status_code == 302
    db.session.expire_all()
    assert (db.session.get(OnsiteSlot, first).booked, db.session.get(OnsiteSlot, second).booked) == (0, 1)
    assert fresh(who.application_id).data["onsite"]["slot"] == second


def test_a_full_slot_refuses_in_chinese(app, make_applicant, eng, clock) -> None:
    early, late = make_applicant(), make_applicant()
    for who in (early, late):
        to_manual_identity(eng, who)
    (slot,) = open_slots(clock, capacity=1, last=time(9, 30))
    assert book(student_client(app, early), slot).status_code == 302
    client = student_client(app, late)
    assert "已约满" in client.get("/application/onsite").get_data(as_text=True)
    refused = book(client, slot)
    assert refused.status_code == 422 and "该时段已约满，请选择其他时段" in refused.get_data(as_text=True)
    assert db.session.scalar(select(OnsiteBooking.application_id)) == early.application_id
    assert fresh(late.application_id).data.get("onsite") is None
    assert db.session.scalars(select(HistoryEvent).where(HistoryEvent.event == "book_onsite")).all()[-1].seq


def test_cancel_before_the_slot_but_not_within_two_hours(app, make_applicant, eng, clock) -> None:
    who = make_applicant()
    to_manual_identity(eng, who)
    first, _second = open_slots(clock)
    client = student_client(app, who)
    assert book(client, first).status_code == 302
    assert cancel(client).status_code == 302
    assert db.session.get(OnsiteSlot, first).booked == 0 and db.session.scalar(select(OnsiteBooking.id)) is None
    assert "尚未预约" in client.get("/application/onsite").get_data(as_text=True)
    assert db.session.scalars(select(HistoryEvent.event).order_by(HistoryEvent.id.desc())).first() == "cancel_onsite"

    assert book(client, first).status_code == 302
    clock.now = clock.now.replace(day=10, hour=0)  # 08:00 Beijing on the day: one hour before
    late = cancel(client)
    assert late.status_code == 422 and "开始前2小时内不能修改或取消" in late.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(OnsiteSlot, first).booked == 1


def test_students_who_need_no_onsite_check_cannot_book(app, make_applicant, eng, clock) -> None:
    who = make_applicant()  # 普通, identity matched online
    to_verified(eng, who)
    (slot, *_rest) = open_slots(clock)
    client = student_client(app, who)
    assert "您无需到确认点现场确认" in client.get("/application/onsite").get_data(as_text=True)
    assert "预约：" not in client.get("/application").get_data(as_text=True)  # no stray blocked button
    refused = book(client, slot)
    assert refused.status_code == 422 and "您无需到确认点现场确认" in refused.get_data(as_text=True)


def test_special_categories_book_from_the_materials_page(app, make_applicant, eng, clock) -> None:
    who = make_applicant(category="退役士兵")
    to_materials_pending(eng, who)
    (slot, *_rest) = open_slots(clock)
    client = student_client(app, who)
    assert "预约现场确认" in client.get("/application").get_data(as_text=True)
    page = client.get("/application/onsite").get_data(as_text=True)
    assert "您的考生类别需要到确认点现场核验证明材料原件" in page and "退役证原件" in page
    assert book(client, slot).status_code == 302
    assert fresh(who.application_id).state == "materials_pending"


def test_admin_opens_slots_and_sets_capacity_on_the_page(app, clock) -> None:
    point = nk01()
    _account, admin_person = add_account("admin")
    client = client_of(app, admin_person)
    url = f"/admin/points/{point.id}/slots"
    token = csrf_token(client, url)
    form = {
        "csrf_token": token,
        "day": "2026-12-12",
        "first": "14:00",
        "last": "15:00",
        "minutes": "20",
        "capacity": "3",
    }
    assert client.post(url, data=form).status_code == 302
    page = client.get(url).get_data(as_text=True)
    assert "已添加3个时段" in page and "14:40–15:00" in page
    bad = client.post(url, data={**form, "day": "明天"})
    assert bad.status_code == 422 and "请填写日期" in bad.get_data(as_text=True)

    slot = db.session.scalars(select(OnsiteSlot).order_by(OnsiteSlot.starts_at)).first()
    assert client.post(f"{url}/{slot.id}", data={"csrf_token": token, "capacity": "8"}).status_code == 302
    assert db.session.get(OnsiteSlot, slot.id).capacity == 8
    slot.booked = 2
    db.session.commit()
    below = client.post(f"{url}/{slot.id}", data={"csrf_token": token, "capacity": "1"})
    assert below.status_code == 422 and "可预约人数不能少于已预约人数" in below.get_data(as_text=True)
    actions = db.session.scalars(select(AdminAction.action)).all()
    assert "add_onsite_slots" in actions and "set_onsite_capacity" in actions


def test_cli_adds_lists_and_sets_capacity(app) -> None:
    runner = app.test_cli_runner()
    added = runner.invoke(args=["points", "slots", "add", "NK01", "--day", "2026-12-15", "--capacity", "4"])
    assert added.exit_code == 0 and "5 slot(s) added" in added.stdout
    listed = runner.invoke(args=["points", "slots", "list", "NK01", "--day", "2026-12-15"])
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 5 and lines[0].endswith("2026年12月15日 09:00–09:30\t0/4")
    slot_id = lines[0].split("\t")[0]
    assert runner.invoke(args=["points", "slots", "capacity", "NK01", slot_id, "9"]).exit_code == 0
    assert db.session.get(OnsiteSlot, int(slot_id)).capacity == 9
    past = runner.invoke(args=["points", "slots", "add", "NK01", "--day", "2026-11-01"])
    assert past.exit_code == 1 and "只能添加将来的时段" in past.stderr


def test_each_page_only_for_its_role(app, make_applicant) -> None:
    who = make_applicant()
    student = student_client(app, who)
    staff = staff_client(app, make_staff())
    point = nk01()
    admin_url = f"/admin/points/{point.id}/slots"
    for client, url in (
        (student, "/staff/onsite"),
        (student, admin_url),
        (staff, admin_url),
        (staff, "/application/onsite"),
    ):
        assert client.get(url).status_code in (302, 403, 404), url
    assert app.test_client().get("/application/onsite").status_code == 302  # to the log-in page

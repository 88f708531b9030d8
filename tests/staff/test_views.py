from __future__ import annotations

import re

from sqlalchemy import select

from gzsb.bootstrap import vault
from gzsb.cli.demo import DEMO_PASSWORD
from gzsb.common.security import basic_info_of
from gzsb.extensions import db
from gzsb.models import Application, CorrectionRequest, HistoryEvent, Outbox
from tests.enrollment.test_views import TOKEN, csrf
from tests.review_support import (
    add_upload,
    fresh,
    make_staff,
    to_manual_identity,
    to_materials_review,
    with_correction,
)

VERSION = re.compile(r'name="version" value="(\d+)"')


def staff_client(app, account):
    client = app.test_client()
    number = vault().decrypt(account.id_number_enc)
    response = client.post("/login", data={"login": number, "password": DEMO_PASSWORD, "csrf_token": csrf(client)})
    assert response.status_code == 302 and response.headers["Location"].endswith("/staff/")
    return client


def form_of(client, path: str) -> dict[str, str]:
    page = client.get(path).get_data(as_text=True)
    return {"csrf_token": TOKEN.search(page).group(1), "version": VERSION.search(page).group(1)}


def decide(client, uid: str, fields: dict[str, str], **form: str):
    return client.post(f"/staff/applications/{uid}/decision", data={**fields, **form})


def last_event(application_id: int) -> HistoryEvent:
    return db.session.scalars(
        select(HistoryEvent).where(HistoryEvent.application_id == application_id).order_by(HistoryEvent.seq.desc())
    ).first()


def test_dashboard_and_queue_show_only_the_point_oldest_first(app, make_applicant, eng, clock) -> None:
    early, late, elsewhere = (make_applicant(category="退役士兵") for _ in range(3))
    to_materials_review(eng, early)
    clock.advance(hours=3)
    to_materials_review(eng, late)
    hx = fresh(elsewhere.application_id)
    to_materials_review(eng, elsewhere)
    db.session.execute(
        Application.__table__.update().where(Application.id == hx.id).values(confirmation_point_id=_point("HX01"))
    )
    db.session.commit()
    clock.advance(minutes=30)
    client = staff_client(app, make_staff())

    board = client.get("/staff/").get_data(as_text=True)
    assert "南开区招生考试中心" in board
    counts = re.findall(r'<span class="count" aria-label="待处理数量">(\d+)</span>', board)
    assert counts == ["2", "0", "0"]
    assert "最早一件已等待3小时30分钟" in board

    listing = client.get("/staff/queues/materials").get_data(as_text=True)
    names = [fresh(w.application_id).data["basic_info"]["name"] for w in (early, late, elsewhere)]
    assert listing.index(names[0]) < listing.index(names[1]) and names[2] not in listing
    assert "3小时30分钟" in listing and "30分钟" in listing
    number = basic_info_of(fresh(early.application_id).data, vault())["id_number"]
    assert number not in listing and number[:6] + "********" + number[-4:] in listing
    assert client.get("/staff/queues/nothing").status_code == 404


def _point(code: str) -> int:
    from tests.review_support import point_id

    return point_id(code)


def test_reject_needs_a_reason_then_reject_and_approve(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    files = to_materials_review(eng, who)
    staff = make_staff()
    client = staff_client(app, staff)
    uid = fresh(who.application_id).uid
    page = client.get(f"/staff/applications/{uid}").get_data(as_text=True)
    for file in files:
        assert f"/staff/applications/{uid}/uploads/{file}" in page
    assert "材料不清晰" in page and "审核不通过" in page and "审核通过" in page
    info = basic_info_of(fresh(who.application_id).data, vault())
    assert info["id_number"] not in page and info["mobile"] not in page
    image = client.get(f"/staff/applications/{uid}/uploads/{files[0]}")
    assert image.status_code == 200 and image.headers["X-Content-Type-Options"] == "nosniff"

    fields = form_of(client, f"/staff/applications/{uid}")
    missing = decide(client, uid, fields, queue="materials", decision="reject", reason_choice="", reason_text=" ")
    assert missing.status_code == 422 and "请选择或填写不通过原因" in missing.get_data(as_text=True)
    odd = decide(client, uid, fields, queue="materials", decision="reject", reason_choice="随便写的", reason_text="")
    assert odd.status_code == 422 and "请从列表中选择常见原因" in odd.get_data(as_text=True)
    assert fresh(who.application_id).state == "materials_review"

    rejected = decide(
        client, uid, fields, queue="materials", decision="reject", reason_choice="材料不清晰", reason_text="退役证反光"
    )
    assert rejected.status_code == 302 and rejected.headers["Location"].endswith("/staff/queues/materials")
    assert fresh(who.application_id).state == "materials_rejected"
    event = last_event(who.application_id)
    assert (event.event, event.actor, event.role) == ("reject_materials", f"account:{staff.id}", "staff")
    assert "材料不清晰：退役证反光" in event.payload
    sms = db.session.scalars(select(Outbox).where(Outbox.application_id == who.application_id)).all()
    assert sms[-1].payload["template"] == "materials_rejected"
    assert "已处理" in client.get("/staff/queues/materials").get_data(as_text=True)

    new = add_upload(who.application_id).uid
    eng.fire(who.application_id, "submit_materials", who.actor, {"files": [new]})
    fields = form_of(client, f"/staff/applications/{uid}")
    assert "第1次提交未通过：材料不清晰：退役证反光" in client.get(f"/staff/applications/{uid}").get_data(as_text=True)
    approved = decide(client, uid, fields, queue="materials", decision="approve", note="")
    assert approved.status_code == 302 and fresh(who.application_id).state == "approved"
    assert last_event(who.application_id).event == "approve_materials"


def test_two_staff_cannot_both_decide(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    to_materials_review(eng, who)
    first, second = staff_client(app, make_staff(name="甲老师")), staff_client(app, make_staff(name="乙老师"))
    uid = fresh(who.application_id).uid
    seen_by_first = form_of(first, f"/staff/applications/{uid}")
    seen_by_second = form_of(second, f"/staff/applications/{uid}")
    assert decide(first, uid, seen_by_first, queue="materials", decision="approve").status_code == 302
    late = decide(second, uid, seen_by_second, queue="materials", decision="reject", reason_choice="材料不完整")
    assert late.status_code == 409 and "该事项已被其他工作人员处理" in late.get_data(as_text=True)
    assert fresh(who.application_id).state == "approved"
    assert [e.event for e in db.session.scalars(select(HistoryEvent).where(HistoryEvent.role == "staff"))] == [
        "approve_materials"
    ]


def test_a_changed_application_asks_to_check_again(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    to_materials_review(eng, who)
    client = staff_client(app, make_staff())
    uid = fresh(who.application_id).uid
    stale = form_of(client, f"/staff/applications/{uid}")
    db.session.execute(
        Application.__table__.update()
        .where(Application.id == who.application_id)
        .values(version=Application.version + 1)
    )
    db.session.commit()
    again = decide(client, uid, stale, queue="materials", decision="approve")
    assert again.status_code == 409 and "考生信息已更新，请核对后重新操作" in again.get_data(as_text=True)
    assert fresh(who.application_id).state == "materials_review"


def test_manual_identity_item_shows_both_images_and_the_score(app, make_applicant, eng) -> None:
    who = make_applicant()
    images = to_manual_identity(eng, who)
    client = staff_client(app, make_staff())
    board = client.get("/staff/").get_data(as_text=True)
    assert re.findall(r'aria-label="待处理数量">(\d+)<', board) == ["0", "1", "0"]
    uid = fresh(who.application_id).uid
    page = client.get(f"/staff/applications/{uid}").get_data(as_text=True)
    assert "证件照" in page and "身份证人像面" in page and "0.800 / 0.600" in page
    for key in ("photo", "id_card"):
        assert client.get(f"/staff/applications/{uid}/uploads/{images[key]}").status_code == 200
    fields = form_of(client, f"/staff/applications/{uid}")
    rejected = decide(client, uid, fields, queue="identity", decision="reject", reason_choice="照片非本人")
    assert rejected.status_code == 302 and fresh(who.application_id).state == "identity_pending"
    assert fresh(who.application_id).data["identity"]["review"]["reason"] == "照片非本人"


def test_correction_requests_are_decided_once(app, make_applicant, eng) -> None:
    who = make_applicant()
    request = with_correction(eng, who)
    client = staff_client(app, make_staff())
    listing = client.get("/staff/queues/corrections").get_data(as_text=True)
    assert "毕业年份应为2026年" in listing and f"/staff/corrections/{request.id}" in listing
    page = client.get(f"/staff/corrections/{request.id}").get_data(as_text=True)
    assert "毕业年份应为2026年" in page and "天津职业大学" in page
    evidence = client.get(f"/staff/corrections/{request.id}/evidence/1")
    assert evidence.status_code == 200 and evidence.mimetype == "image/png"
    assert client.get(f"/staff/corrections/{request.id}/evidence/2").status_code == 404

    fields = form_of(client, f"/staff/corrections/{request.id}")
    accepted = client.post(
        f"/staff/corrections/{request.id}/decision", data={**fields, "queue": "corrections", "decision": "approve"}
    )
    assert accepted.status_code == 302
    db.session.expire_all()
    assert db.session.get(CorrectionRequest, request.id).status == "accepted"
    assert last_event(who.application_id).event == "resolve_xueji_correction"
    again = client.post(
        f"/staff/corrections/{request.id}/decision",
        data={**fields, "queue": "corrections", "decision": "reject", "reason_choice": "证明材料不足"},
    )
    assert again.status_code == 409 and "该事项已被其他工作人员处理" in again.get_data(as_text=True)
    assert "暂无待处理事项" in client.get("/staff/queues/corrections").get_data(as_text=True)


def test_staff_of_another_point_get_404_everywhere(app, make_applicant, eng) -> None:
    material, manual, corrected = make_applicant(category="退役士兵"), make_applicant(), make_applicant()
    files = to_materials_review(eng, material)
    images = to_manual_identity(eng, manual)
    request = with_correction(eng, corrected)
    outsider = staff_client(app, make_staff("HX01", "河西老师"))
    board = outsider.get("/staff/").get_data(as_text=True)
    assert re.findall(r'aria-label="待处理数量">(\d+)<', board) == ["0", "0", "0"]
    for who, upload in ((material, files[0]), (manual, images["photo"])):
        uid = fresh(who.application_id).uid
        assert outsider.get(f"/staff/applications/{uid}").status_code == 404
        assert outsider.get(f"/staff/applications/{uid}/uploads/{upload}").status_code == 404
        assert outsider.get(f"/staff/applications/{uid}/xueji-photo").status_code == 404
        token = TOKEN.search(outsider.get("/staff/").get_data(as_text=True)).group(1)
        refused = outsider.post(
            f"/staff/applications/{uid}/decision", data={"csrf_token": token, "decision": "approve", "version": 0}
        )
        assert refused.status_code == 404
    assert outsider.get(f"/staff/corrections/{request.id}").status_code == 404
    assert outsider.get(f"/staff/corrections/{request.id}/evidence/1").status_code == 404
    token = TOKEN.search(outsider.get("/staff/").get_data(as_text=True)).group(1)
    assert outsider.post(f"/staff/corrections/{request.id}/decision", data={"csrf_token": token}).status_code == 404
    assert fresh(material.application_id).state == "materials_review"
    assert fresh(manual.application_id).state == "manual_identity"
    db.session.expire_all()
    assert db.session.get(CorrectionRequest, request.id).status == "open"
    # And one point's upload is not reachable through another of its applicants.
    insider = staff_client(app, make_staff())
    other_uid = fresh(manual.application_id).uid
    assert insider.get(f"/staff/applications/{other_uid}/uploads/{files[0]}").status_code == 404


def test_students_cannot_open_the_console(app, make_applicant) -> None:
    from tests.enrollment.test_views import login

    who = make_applicant()
    client = app.test_client()
    login(client, who)
    assert client.get("/staff/").status_code == 403
    anonymous = app.test_client()
    assert anonymous.get("/staff/queues/materials").status_code == 302

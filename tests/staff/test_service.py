from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gzsb.errors import InvalidInput
from gzsb.extensions import db
from gzsb.models import Account
from gzsb.staff import service as staff
from tests.review_support import (
    MATCHED,
    SYSTEM,
    fresh,
    identity_from_confirming,
    make_staff,
    material_files,
    pay,
    staff_actor,
    to_materials_review,
    with_correction,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(0, "0分钟"), (59, "59分钟"), (60, "1小时"), (61, "1小时1分钟"), (24 * 60, "1天"), (26 * 60 + 5, "1天2小时")],
)
def test_waited_reads_in_chinese(minutes: int, text: str) -> None:
    assert staff.waited(NOW - timedelta(minutes=minutes), NOW) == text
    # SQLite hands back naive UTC datetimes.
    assert staff.waited((NOW - timedelta(minutes=minutes)).replace(tzinfo=None), NOW) == text


def test_a_reason_is_a_common_one_or_free_text_or_both() -> None:
    queue = staff.QUEUES["materials"]
    assert staff.compose_reason(queue, "材料不清晰", "") == "材料不清晰"
    assert staff.compose_reason(queue, "", " 请补交退役证 ") == "请补交退役证"
    assert staff.compose_reason(queue, "材料不完整", "缺少退役证") == "材料不完整：缺少退役证"
    with pytest.raises(InvalidInput) as missing:
        staff.compose_reason(queue, " ", "")
    assert missing.value.fields == {"reason": [staff.NEED_REASON]}
    with pytest.raises(InvalidInput):
        staff.compose_reason(queue, "照片非本人", "")  # an identity reason, not a materials one


def test_waiting_counts_from_the_last_entry_and_ignores_self_loops(app, make_applicant, eng, clock) -> None:
    who = make_applicant(category="退役士兵")
    request = with_correction(eng, who)
    choices = {"choices": [{"institution": "10060", "major": "080901"}]}
    eng.fire(who.application_id, "submit_preferences", who.actor, choices)
    images = identity_from_confirming(eng, who)
    eng.fire(who.application_id, "upload_identity", who.actor, images)
    eng.fire(who.application_id, "face_matched", SYSTEM, MATCHED)
    eng.fire(who.application_id, "create_order", who.actor, {})
    pay(eng, who)
    member = make_staff()
    eng.fire(who.application_id, "submit_materials", who.actor, {"files": material_files(who.application_id)})
    eng.fire(who.application_id, "reject_materials", staff_actor(member), {"reason": "材料不清晰"})
    clock.advance(hours=5)
    entered = clock.now
    eng.fire(who.application_id, "submit_materials", who.actor, {"files": material_files(who.application_id)})
    clock.advance(hours=2)
    eng.fire(
        who.application_id,
        "resolve_xueji_correction",
        staff_actor(member),
        {"request": request.id, "decision": "accepted"},
    )  # a self-loop: still waiting since the resubmission
    clock.advance(minutes=10)
    rows = {r["queue"].key: r for r in staff.summary(db.session, member, clock.now)}
    assert rows["materials"]["count"] == 1 and rows["materials"]["oldest"] == entered
    assert rows["materials"]["waited"] == "2小时10分钟"
    assert rows["corrections"]["count"] == 0
    items = staff.queue_items(db.session, member, staff.QUEUES["materials"], clock.now)
    assert [i["uid"] for i in items] == [fresh(who.application_id).uid]


def test_staff_without_a_point_see_nothing_and_reach_nothing(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    to_materials_review(eng, who)
    loose = make_staff()
    loose.confirmation_point_id = None
    db.session.commit()
    assert [r["count"] for r in staff.summary(db.session, loose, NOW)] == [0, 0, 0]
    assert staff.queue_items(db.session, loose, staff.QUEUES["materials"], NOW) == []
    with pytest.raises(Exception) as missing:
        staff.application_for(db.session, loose, fresh(who.application_id).uid)
    assert missing.value.http_status == 404
    assert isinstance(db.session.get(Account, loose.id), Account)

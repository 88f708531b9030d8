from __future__ import annotations

import pytest
from sqlalchemy import select

from gzsb.bootstrap import storage
from gzsb.common.uploads import discard
from gzsb.enrollment.service import latest_correction
from gzsb.errors import ConflictError, InvalidInput
from gzsb.extensions import db
from gzsb.models import CorrectionRequest, HistoryEvent, Outbox
from tests.review_support import (
    add_upload,
    fresh,
    make_staff,
    staff_actor,
    to_manual_identity,
    to_materials_pending,
    to_materials_review,
    with_correction,
)


def sms_templates(application_id: int) -> list[str]:
    rows = db.session.scalars(
        select(Outbox).where(Outbox.application_id == application_id, Outbox.kind == "sms").order_by(Outbox.id)
    )
    return [o.payload["template"] for o in rows]


def test_materials_step_takes_only_live_material_uploads_of_the_application(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    other = make_applicant(category="退役士兵")
    to_materials_pending(eng, who)
    mine = add_upload(who.application_id)
    theirs = add_upload(other.application_id)
    photo = add_upload(who.application_id, "photo")
    gone = add_upload(who.application_id)
    discard(storage(), gone, eng.clock())
    db.session.commit()
    for bad in (theirs.uid, photo.uid, gone.uid, "0" * 32):
        with pytest.raises(InvalidInput) as refused:
            eng.fire(who.application_id, "submit_materials", who.actor, {"files": [mine.uid, bad]})
        assert refused.value.fields == {"files": ["部分材料已删除或无效，请刷新页面后重新提交"]}
        assert fresh(who.application_id).state == "materials_pending"
    with pytest.raises(InvalidInput) as empty:
        eng.fire(who.application_id, "submit_materials", who.actor, {"files": []})
    assert empty.value.fields == {"files": ["请上传1至10张材料照片"]}

    fired = eng.fire(who.application_id, "submit_materials", who.actor, {"files": [mine.uid, mine.uid]})
    assert fired.to_state == "materials_review"
    section = fresh(who.application_id).data["materials"]
    assert section["files"] == [mine.uid] and section["round"] == 1 and section["review"] is None


def test_materials_rejection_is_recorded_sent_by_sms_and_resubmission_keeps_the_earlier_round(
    app, make_applicant, eng
) -> None:
    who = make_applicant(category="退役士兵")
    first = to_materials_review(eng, who)
    staff = make_staff()
    before = sms_templates(who.application_id)
    fired = eng.fire(who.application_id, "reject_materials", staff_actor(staff), {"reason": "材料不清晰"})
    assert fired.to_state == "materials_rejected"
    # One SMS, the rejection's; not the "please upload" of materials_pending.
    assert sms_templates(who.application_id)[len(before) :] == ["materials_rejected"]
    review = fresh(who.application_id).data["materials"]["review"]
    assert (review["decision"], review["reason"], review["by"]) == ("rejected", "材料不清晰", f"account:{staff.id}")
    event = db.session.scalars(select(HistoryEvent).where(HistoryEvent.seq == fired.seq)).one()
    assert event.role == "staff" and "材料不清晰" in event.payload

    new = add_upload(who.application_id).uid
    eng.fire(who.application_id, "submit_materials", who.actor, {"files": [first[0], new]})
    section = fresh(who.application_id).data["materials"]
    assert section["round"] == 2 and section["files"] == [first[0], new]
    assert section["earlier"][0]["review"]["reason"] == "材料不清晰"
    assert eng.fire(who.application_id, "approve_materials", staff_actor(staff), {}).to_state == "approved"
    assert sms_templates(who.application_id)[-1] == "registration_approved"


def test_rejection_needs_a_reason(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    to_materials_review(eng, who)
    with pytest.raises(InvalidInput) as refused:
        eng.fire(who.application_id, "reject_materials", staff_actor(make_staff()), {"reason": ""})
    assert refused.value.fields == {"reason": ["请填写不通过原因"]}
    assert fresh(who.application_id).state == "materials_review"


def test_identity_rejection_sends_its_own_sms(app, make_applicant, eng) -> None:
    who = make_applicant()
    to_manual_identity(eng, who)
    staff = make_staff()
    fired = eng.fire(who.application_id, "reject_identity", staff_actor(staff), {"reason": "照片非本人"})
    assert fired.to_state == "identity_pending"
    assert sms_templates(who.application_id)[-1] == "identity_rejected"
    assert fresh(who.application_id).data["identity"]["review"]["reason"] == "照片非本人"


def test_correction_decision_updates_the_request_once(app, make_applicant, eng) -> None:
    who = make_applicant()
    request = with_correction(eng, who)
    staff = make_staff()
    payload = {"request": request.id, "decision": "rejected", "reason": ""}
    with pytest.raises(InvalidInput) as refused:
        eng.fire(who.application_id, "resolve_xueji_correction", staff_actor(staff), payload)
    assert refused.value.fields == {"reason": ["请填写不通过原因"]}

    payload["reason"] = "证明材料不足"
    fired = eng.fire(who.application_id, "resolve_xueji_correction", staff_actor(staff), payload)
    assert fired.from_state == fired.to_state == "preferences"
    db.session.expire_all()
    row = db.session.get(CorrectionRequest, request.id)
    assert (row.status, row.note, row.decided_by) == ("rejected", "证明材料不足", staff.id)
    report = latest_correction(db.session, who.application_id)
    assert report["status"] == "rejected" and report["decision"]["reason"] == "证明材料不足"
    assert "report" not in fresh(who.application_id).data["xueji"]  # the request row is the one record
    assert sms_templates(who.application_id)[-1] == "xueji_correction_rejected"
    # Decided already: a second decision changes nothing.
    with pytest.raises(ConflictError):
        eng.fire(
            who.application_id, "resolve_xueji_correction", staff_actor(staff), {**payload, "decision": "accepted"}
        )
    assert db.session.get(CorrectionRequest, request.id).status == "rejected"


def test_correction_of_another_application_is_refused(app, make_applicant, eng) -> None:
    who, other = make_applicant(), make_applicant()
    request = with_correction(eng, who)
    with_correction(eng, other)
    with pytest.raises(ConflictError):
        eng.fire(
            other.application_id,
            "resolve_xueji_correction",
            staff_actor(make_staff()),
            {"request": request.id, "decision": "accepted"},
        )
    db.session.expire_all()
    assert db.session.get(CorrectionRequest, request.id).status == "open"


def test_the_worker_sends_the_rejection_sms_without_the_reason(app, make_applicant, eng) -> None:
    from gzsb.models import SmsMessage
    from gzsb.worker import tasks as jobs
    from tests.support import demo_student

    who = make_applicant(category="退役士兵")
    to_materials_review(eng, who)
    jobs.use_app(app)
    jobs.tick.call_local()  # the earlier notifications
    eng.fire(who.application_id, "reject_materials", staff_actor(make_staff()), {"reason": "退役证照片模糊"})
    assert jobs.tick.call_local()["sms"] == 1
    body = db.session.scalars(select(SmsMessage).order_by(SmsMessage.id.desc())).first().body
    assert demo_student(who.index).name in body and "未通过确认点审核" in body
    assert "退役证照片模糊" not in body  # the reason is read after login

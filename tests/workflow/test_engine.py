from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from gzsb.audit.service import verify_all
from gzsb.bootstrap import engine
from gzsb.errors import EventNotAvailable, Forbidden, GuardRefused, InvalidInput, StaleApplication
from gzsb.extensions import db
from gzsb.models import Application, HistoryEvent, Outbox, Timer
from gzsb.payments.service import expired_orders
from gzsb.worker.drain import fire_due_timers
from gzsb.workflow.engine import Actor
from tests.support import CONSENT, MISMATCHED, SYSTEM, identity_uploads, pay, student_payload, to_confirming, to_payment


def snapshot(app_id: int) -> tuple[Any, ...]:
    db.session.expire_all()
    app = db.session.get(Application, app_id)
    events = db.session.scalar(select(func.count()).where(HistoryEvent.application_id == app_id))
    outbox = db.session.scalar(select(func.count()).select_from(Outbox))
    return app.state, app.seq, app.version, app.head, dict(app.data), events, outbox


def test_student_reaches_approved_and_history_verifies(app, make_applicant, eng) -> None:
    who = make_applicant()
    to_payment(eng, who)
    fired = pay(eng, who)
    assert (fired.from_state, fired.to_state) == ("payment_pending", "approved")
    application = db.session.get(Application, who.application_id)
    assert application.state == "approved" and application.seq == 11 and application.head == fired.hash
    verdicts = list(verify_all(db.session))
    assert all(v.ok for v in verdicts), [v.describe() for v in verdicts]
    templates = [o.payload.get("template") for o in db.session.scalars(select(Outbox).where(Outbox.kind == "sms"))]
    assert templates == ["identity_verified", "registration_approved"]


def test_special_category_goes_to_materials_review(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    to_payment(eng, who)
    assert pay(eng, who).to_state == "materials_pending"
    from tests.review_support import add_upload  # materials are real uploads of the application

    eng.fire(who.application_id, "submit_materials", who.actor, {"files": [add_upload(who.application_id).uid]})
    staff = Actor("account:999", "staff")
    eng.fire(who.application_id, "reject_materials", staff, {"reason": "退役证不清晰"})
    assert db.session.get(Application, who.application_id).data["materials"]["review"]["reason"] == "退役证不清晰"
    eng.fire(who.application_id, "submit_materials", who.actor, {"files": [add_upload(who.application_id).uid]})
    assert eng.fire(who.application_id, "approve_materials", staff, {}).to_state == "approved"


def test_closed_window_refuses_with_a_reason_and_changes_nothing(app, make_applicant, eng, clock) -> None:
    who = make_applicant()
    clock.advance(days=60)
    before = snapshot(who.application_id)
    with pytest.raises(GuardRefused) as refused:
        eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    assert refused.value.reasons[0].startswith("报名时间已截止")
    assert refused.value.http_status == 422
    assert snapshot(who.application_id) == before


def test_wrong_role_wrong_state_and_bad_payload_change_nothing(app, make_applicant, eng) -> None:
    who = make_applicant()
    before = snapshot(who.application_id)
    with pytest.raises(Forbidden):
        eng.fire(who.application_id, "accept_pledge", SYSTEM, {"agree": True})
    with pytest.raises(EventNotAvailable):
        eng.fire(who.application_id, "create_order", who.actor, {})
    with pytest.raises(InvalidInput) as invalid:
        eng.fire(who.application_id, "accept_pledge", who.actor, {})
    assert invalid.value.fields == {"agree": ["请先阅读并勾选考试承诺书"]}
    assert snapshot(who.application_id) == before


def test_basic_info_errors_are_chinese_and_per_field(app, make_applicant, eng) -> None:
    who = make_applicant()
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    before = snapshot(who.application_id)
    bad = student_payload(who, id_number="120104200301010011", postcode="3000", mobile="")
    with pytest.raises(InvalidInput) as invalid:
        eng.fire(who.application_id, "submit_basic_info", who.actor, bad)
    assert invalid.value.fields["id_number"] == ["身份证号校验位不正确，请核对"]
    assert invalid.value.fields["postcode"] == ["邮编应为6位数字"]
    assert "mobile" in invalid.value.fields
    assert snapshot(who.application_id) == before


def test_stale_version_is_a_conflict(app, make_applicant, eng) -> None:
    who = make_applicant()
    version = db.session.get(Application, who.application_id).version
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True}, expected_version=version)
    before = snapshot(who.application_id)
    with pytest.raises(StaleApplication):
        eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who), expected_version=version)
    assert snapshot(who.application_id) == before


def test_options_explain_why_a_step_is_blocked(app, make_applicant, eng) -> None:
    who = make_applicant()
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    options = {o.event: o for o in eng.options(db.session.get(Application, who.application_id), who.actor)}
    assert options["submit_preferences"].available is False
    assert options["submit_preferences"].reasons == ("请先点击【验证学籍/学历】",)
    assert options["check_xueji"].available is True
    assert options["submit_preferences"].input["choices"]["required"] is True


def test_student_without_registry_record_may_go_on(app, make_applicant, eng) -> None:
    who = make_applicant(in_registry=False)
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    eng.fire(who.application_id, "check_xueji", who.actor, {})
    with pytest.raises(GuardRefused):
        eng.fire(who.application_id, "report_xueji_error", who.actor, {"problem": "x"})
    fired = eng.fire(
        who.application_id, "submit_preferences", who.actor, {"choices": [{"institution": "10060", "major": "080901"}]}
    )
    assert fired.to_state == "confirming"


def test_three_face_mismatches_lead_to_the_manual_queue(app, make_applicant, eng) -> None:
    who = make_applicant()
    to_confirming(eng, who)
    eng.fire(who.application_id, "confirm_info", who.actor, {})
    eng.fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    destinations = []
    for _ in range(3):
        eng.fire(who.application_id, "upload_identity", who.actor, identity_uploads(who))
        destinations.append(eng.fire(who.application_id, "face_mismatch", SYSTEM, MISMATCHED).to_state)
    assert destinations == ["identity_pending", "identity_pending", "manual_identity"]
    rows = db.session.scalars(select(HistoryEvent.guards).where(HistoryEvent.event == "face_mismatch")).all()
    assert rows[-1].startswith('[["identity_pending",[["attempts_left')
    assert all(v.ok for v in verify_all(db.session))


def test_history_holds_no_personal_data_in_clear(app, make_applicant, eng) -> None:
    who = make_applicant()
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    info = student_payload(who)
    eng.fire(who.application_id, "submit_basic_info", who.actor, info)
    payloads = " ".join(db.session.scalars(select(HistoryEvent.payload)))
    for secret in (info["id_number"], info["mobile"], info["name"], info["address"]):
        assert secret not in payloads
    assert "hmac-sha256:" in payloads


def test_unpaid_order_expires_through_the_durable_timer(app, make_applicant, eng, clock) -> None:
    who = make_applicant()
    to_payment(eng, who)
    timer = db.session.scalars(select(Timer).where(Timer.application_id == who.application_id)).one()
    assert timer.event == "payment_expired" and timer.fired_at is None
    clock.advance(hours=23)
    assert fire_due_timers(db.session, engine(), clock.now) == 0
    clock.advance(hours=2)
    assert fire_due_timers(db.session, engine(), clock.now) == 1
    application = db.session.get(Application, who.application_id)
    assert application.state == "identity_verified"
    assert expired_orders(db.session, application.id)[0]["status"] == "expired"
    assert db.session.get(Timer, timer.id).outcome == "fired"
    assert fire_due_timers(db.session, engine(), clock.advance(hours=30)) == 0


def test_paying_cancels_the_timer(app, make_applicant, eng, clock) -> None:
    who = make_applicant()
    to_payment(eng, who)
    pay(eng, who)
    assert fire_due_timers(db.session, engine(), clock.advance(hours=48)) == 0
    timer = db.session.scalars(select(Timer).where(Timer.application_id == who.application_id)).one()
    assert timer.outcome == "cancelled"
    assert db.session.get(Application, who.application_id).state == "approved"

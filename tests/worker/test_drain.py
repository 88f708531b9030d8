from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gzsb.adapters.sms import sms_sender
from gzsb.bootstrap import engine, vault
from gzsb.extensions import db
from gzsb.models import Outbox, SmsMessage
from gzsb.worker import tasks as jobs
from gzsb.worker.drain import SMS_LEASE, _claim_sms, drain_outbox
from tests.support import demo_student, to_manual_identity


def test_tick_sends_queued_sms_once_with_the_template(app, make_applicant) -> None:
    who = make_applicant()
    eng = engine()
    to_manual_identity(eng, who)
    jobs.use_app(app)
    assert jobs.tick.call_local() == {"timers": 0, "sms": 1, "jobs": 0}
    (message,) = db.session.scalars(select(SmsMessage)).all()
    student = demo_student(who.index)
    assert student.name in message.body and "人工审核" in message.body
    assert vault().decrypt(message.to_enc) == student.mobile
    assert message.to_masked == student.mobile[:3] + "****" + student.mobile[-4:]
    assert db.session.scalars(select(Outbox).where(Outbox.kind == "sms")).one().sent_at is not None
    assert jobs.tick.call_local() == {"timers": 0, "sms": 0, "jobs": 0}


def test_an_sms_whose_sender_died_waits_for_its_lease_then_goes_once(app, make_applicant, clock) -> None:
    who = make_applicant()
    to_manual_identity(engine(), who)
    (item,) = db.session.scalars(select(Outbox).where(Outbox.kind == "sms")).all()
    assert _claim_sms(db.session, item, clock.now)  # a consumer took it and was killed while sending
    jobs.use_app(app)  # render_sms reads the templates of this app

    def drain(at) -> int:
        return drain_outbox(db.session, vault(), sms_sender(app.config, db.session, vault()), jobs.render_sms, at)

    assert drain(clock.now + SMS_LEASE - timedelta(seconds=1)) == 0  # the lease still holds
    assert drain(clock.now + SMS_LEASE) == 1
    assert drain(clock.now + 3 * SMS_LEASE) == 0
    assert len(db.session.scalars(select(SmsMessage)).all()) == 1

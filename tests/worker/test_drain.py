from __future__ import annotations

from sqlalchemy import select

from gzsb.bootstrap import engine, vault
from gzsb.extensions import db
from gzsb.models import Outbox, SmsMessage
from gzsb.worker import tasks as jobs
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

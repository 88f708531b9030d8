"""账号申诉 decided on PostgreSQL (row locks and conditional updates are real there)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gzsb.appeals import service as appeals
from gzsb.appeals.names import FREEZE_FOR_APPEAL, FROZEN
from gzsb.bootstrap import engine, vault
from gzsb.errors import ConflictError, EventNotAvailable
from gzsb.extensions import db
from gzsb.models import Account, Application
from gzsb.workflow.ports import Actor
from tests.support import demo_student, new_applicant, to_confirming

STAFF = Actor("account:900", "staff")


def test_an_appeal_is_decided_once_and_the_owner_gets_one_account(pg_app) -> None:
    who = new_applicant(7001)
    eng = engine()
    to_confirming(eng, who)
    person = demo_student(7001)
    now = pg_app.extensions["gzsb.clock"]()
    settings = appeals.Settings.from_config(pg_app.config)
    case = appeals.open_draft(
        db.session, vault(), name="张真人", id_number=person.id_number, mobile="13912347001", now=now
    )
    appeals.submit(db.session, case, set(appeals.KINDS), now, settings)
    db.session.commit()

    eng.fire(who.application_id, FREEZE_FOR_APPEAL, STAFF, {"case": case.number})
    with pytest.raises(EventNotAvailable):  # a second decider finds the application frozen
        eng.fire(who.application_id, FREEZE_FOR_APPEAL, STAFF, {"case": case.number})
    with pytest.raises(ConflictError):  # and the case decided
        appeals.approve_locked(db.session, case.number, account_id=None, actor=STAFF.id, now=now)
    db.session.rollback()

    account, password = appeals.issue_account(db.session, vault(), case, actor=STAFF.id, now=now)
    db.session.commit()
    again, second = appeals.issue_account(db.session, vault(), case, actor=STAFF.id, now=now)
    db.session.commit()
    assert again.id == account.id and second != password  # a new one-time password, same account
    assert db.session.get(Application, who.application_id).state == FROZEN
    assert db.session.get(Account, who.account_id).disabled_at is not None
    found = db.session.scalars(select(Account).where(Account.id_number_index == vault().index(person.id_number))).all()
    assert [a.id for a in found] == [account.id]

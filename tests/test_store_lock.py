"""The row lock on PostgreSQL: a Core SELECT … FOR UPDATE into a plain record (no ORM
object), and the write by the driver. A concurrent change is seen, an ORM object the caller
holds is fresh afterwards, and driver errors arrive as SQLAlchemy's. Skipped without
TEST_DATABASE_URL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert, select, text

from gzsb.bootstrap import engine
from gzsb.common.writebatch import LockedApplication
from gzsb.errors import StaleApplication
from gzsb.extensions import db
from gzsb.models import Application, ConfirmationPoint, HistoryEvent
from gzsb.store import SqlStore
from tests.drive import application, history
from tests.support import new_applicant, student_payload


def test_the_lock_waits_for_a_concurrent_change_and_works_on_it(pg_app: Flask) -> None:
    who = new_applicant(21)
    before = application(who.application_id).version
    db.session.commit()
    outcome: dict[str, Any] = {}

    def fire() -> None:
        with pg_app.app_context():
            try:
                outcome["fired"] = engine().fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
            except Exception as exc:  # reported below, not lost in the thread
                outcome["error"] = exc
            finally:
                db.session.remove()

    with db.engine.connect() as other:  # another transaction holds the row, as a transition would
        other.execute(text("SELECT 1 FROM applications WHERE id = :id FOR UPDATE"), {"id": who.application_id})
        thread = threading.Thread(target=fire)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive() and not outcome  # waiting for the row
        other.execute(
            text('UPDATE applications SET data = \'{"note": "其他事务"}\', version = version + 5 WHERE id = :id'),
            {"id": who.application_id},
        )
        other.commit()
    thread.join(timeout=20)
    assert "error" not in outcome, outcome
    db.session.expire_all()
    record = application(who.application_id)
    # The transition read the row as the other transaction left it: its data and version.
    assert record.data["note"] == "其他事务" and record.data["pledge"]
    assert record.version == outcome["fired"].version == before + 6
    assert [r.seq for r in history(who.application_id)] == [1]


def test_an_orm_object_the_caller_holds_is_fresh_after_fire(pg_app: Flask) -> None:
    who = new_applicant(22)
    eng = engine()
    db.session.commit()
    held = application(who.application_id)  # a page loaded it before firing (same transaction)
    assert held.state == "started"
    fired = eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    assert (held.state, held.seq, held.version, held.head) == ("pledged", 1, fired.version, fired.hash)
    assert db.session.get(Application, who.application_id) is held
    # Changing it afterwards passes the ORM's version check: it knows the new version.
    point = db.session.scalar(select(ConfirmationPoint.id).where(ConfirmationPoint.code == "HX01"))
    held.confirmation_point_id = point
    db.session.commit()
    fired = eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    assert (held.state, held.version, held.seq) == (fired.to_state, fired.version, 2)


def test_a_step_sets_only_the_record_s_columns(pg_app: Flask) -> None:
    who = new_applicant(23)
    store = SqlStore(db.session)
    with store.transaction():
        record = store.lock(who.application_id)
        assert isinstance(record, LockedApplication)
        assert record.changed_columns() == {}
        record.confirmation_point_id = 7
        assert record.changed_columns() == {"confirmation_point_id": 7}
        with pytest.raises(AttributeError):
            record.account = None  # type: ignore[attr-defined]  # not a column the write knows: refused


def test_a_driver_error_is_sqlalchemy_s_and_rolls_back(pg_app: Flask) -> None:
    who = new_applicant(24)
    eng = engine()
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    row = db.session.execute(select(HistoryEvent).where(HistoryEvent.application_id == who.application_id)).scalar_one()
    taken = {c.key: getattr(row, c.key) for c in HistoryEvent.__table__.columns if c.key != "id"}
    # Another writer already holds seq 2 (the unique (application_id, seq) refuses the write).
    db.session.execute(insert(HistoryEvent).values({**taken, "seq": 2}))
    db.session.commit()
    with pytest.raises(StaleApplication, match="concurrent transition lost"):
        eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    db.session.expire_all()
    assert (application(who.application_id).state, application(who.application_id).seq) == ("pledged", 1)
    # The session is usable again, and so is its pooled connection.
    assert db.session.scalar(select(Application.state).where(Application.id == who.application_id)) == "pledged"

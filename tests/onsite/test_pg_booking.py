"""Concurrent booking on PostgreSQL: many students take the last seats of one slot at the
same moment; the slot never holds more than its capacity, every refusal is the Chinese
"已约满", and each booking is one history event. Skipped without TEST_DATABASE_URL."""

from __future__ import annotations

import itertools
import threading
from datetime import date, time
from typing import Any

from sqlalchemy import func, select

from gzsb.admin.service import Operator
from gzsb.bootstrap import engine
from gzsb.errors import InvalidInput
from gzsb.extensions import db
from gzsb.models import ConfirmationPoint, HistoryEvent, OnsiteBooking, OnsiteSlot
from gzsb.onsite import service as onsite
from tests.support import new_applicant, to_manual_identity

STUDENTS = 12
CAPACITY = 5
_numbers = itertools.count(700)


def test_concurrent_booking_never_exceeds_capacity(pg_app, clock) -> None:
    eng = engine()
    students = [new_applicant(next(_numbers)) for _ in range(STUDENTS)]
    for who in students:
        to_manual_identity(eng, who)
    point = db.session.scalars(select(ConfirmationPoint).where(ConfirmationPoint.code == "NK01")).one()
    (slot,) = onsite.add_slots(
        db.session, Operator("test"), clock.now, point,
        day=date(2026, 12, 10), first=time(9), last=time(9, 30), minutes=30, capacity=CAPACITY,
    )  # fmt: skip
    db.session.commit()
    slot_id = slot.id

    barrier = threading.Barrier(STUDENTS)
    results: list[Any] = [None] * STUDENTS

    def book(i: int) -> None:
        with pg_app.app_context():
            try:
                mine = engine()
                barrier.wait(timeout=60)
                results[i] = mine.fire(students[i].application_id, "book_onsite", students[i].actor, {"slot": slot_id})
            except BaseException as exc:  # noqa: BLE001 - every outcome is inspected below
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=book, args=(i,)) for i in range(STUDENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)

    won = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == CAPACITY, results
    assert all(isinstance(r, InvalidInput) and r.fields == {"slot": ["该时段已约满，请选择其他时段"]} for r in refused)
    db.session.expire_all()
    assert db.session.get(OnsiteSlot, slot_id).booked == CAPACITY
    assert db.session.scalar(select(func.count()).select_from(OnsiteBooking)) == CAPACITY
    events = db.session.scalar(select(func.count()).where(HistoryEvent.event == "book_onsite"))
    assert events == CAPACITY  # a refused booking leaves no history event behind


def test_the_database_refuses_overbooking_by_itself(pg_app, clock) -> None:
    """The CHECK constraint: even an UPDATE that forgets the condition cannot overbook."""
    point = db.session.scalars(select(ConfirmationPoint).where(ConfirmationPoint.code == "NK01")).one()
    (slot,) = onsite.add_slots(
        db.session, Operator("test"), clock.now, point,
        day=date(2026, 12, 11), first=time(9), last=time(9, 30), minutes=30, capacity=1,
    )  # fmt: skip
    db.session.commit()
    try:
        db.session.execute(OnsiteSlot.__table__.update().where(OnsiteSlot.id == slot.id).values(booked=2))
        db.session.flush()
    except Exception as exc:  # noqa: BLE001 - the driver's IntegrityError
        assert "ck_onsite_slots_booked" in str(exc)
        db.session.rollback()
    else:
        raise AssertionError("booked > capacity was accepted")

"""Twenty threads fire the same event on one application at the same moment: exactly
one wins, the other nineteen get a ConflictError, and the history stays a gapless,
verifiable chain. On PostgreSQL (row locks; set TEST_DATABASE_URL, else skipped) and on
a SQLite file in WAL mode (version check, unique seq, busy database → ConflictError)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from gzsb.audit.service import verify_all
from gzsb.bootstrap import engine
from gzsb.errors import ConflictError, StaleApplication
from gzsb.extensions import db
from gzsb.models import HistoryEvent, Timer
from gzsb.workflow.engine import Fired
from tests.drive import application, history
from tests.support import (
    CONSENT,
    MATCHED,
    SYSTEM,
    Applicant,
    identity_uploads,
    new_applicant,
    order_of,
    student_payload,
    to_confirming,
)

THREADS = 20


def _at_start(eng: Any, who: Applicant) -> None:
    """accept_pledge from the initial state."""


def _at_payment(eng: Any, who: Applicant) -> None:
    """create_order from identity_verified (arms a timer and writes an order)."""
    to_confirming(eng, who)
    eng.fire(who.application_id, "confirm_info", who.actor, {})
    eng.fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    eng.fire(who.application_id, "upload_identity", who.actor, identity_uploads(who))
    eng.fire(who.application_id, "face_matched", SYSTEM, MATCHED)


SCENARIOS: dict[str, tuple[Callable[[Any, Applicant], None], str, dict[str, Any]]] = {
    "accept_pledge": (_at_start, "accept_pledge", {"agree": True}),
    "create_order": (_at_payment, "create_order", {}),
}


def race(app: Flask, who: Applicant, event: str, payload: dict[str, Any], expected_version: int | None) -> list[Any]:
    """Each thread: its own app context (so its own session and connection), then all
    fire together behind a barrier. Returns each thread's Fired or exception."""
    barrier = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS

    def worker(i: int) -> None:
        with app.app_context():
            try:
                eng = engine()
                barrier.wait(timeout=60)
                results[i] = eng.fire(who.application_id, event, who.actor, payload, expected_version=expected_version)
            except BaseException as exc:  # noqa: BLE001 - every outcome is inspected by the test
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,), name=f"racer-{i}") for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    return results


def check_race(app: Flask, who: Applicant, scenario: str, with_version: bool) -> None:
    setup, event, payload = SCENARIOS[scenario]
    eng = engine()
    setup(eng, who)
    before = application(who.application_id)
    seq, version, state = before.seq, before.version, before.state
    timers_before = db.session.scalar(select(func.count()).select_from(Timer))
    db.session.commit()

    results = race(app, who, event, payload, version if with_version else None)

    winners = [r for r in results if isinstance(r, Fired)]
    losers = [r for r in results if not isinstance(r, Fired)]
    kinds = Counter(f"{type(r).__name__}: {r}"[:120] for r in losers)
    assert len(winners) == 1, kinds
    assert all(isinstance(r, ConflictError) for r in losers), kinds
    assert len(losers) == THREADS - 1
    if with_version:
        # Everyone asked for the version they saw; only one could still be there.
        assert all(isinstance(r, StaleApplication) for r in losers), kinds

    (won,) = winners
    db.session.expire_all()
    after = application(who.application_id)
    assert (won.from_state, won.seq) == (state, seq + 1)
    assert (after.state, after.seq, after.head) == (won.to_state, seq + 1, won.hash)
    assert after.version > version
    assert [e.seq for e in history(who.application_id)] == list(range(1, seq + 2))
    assert db.session.scalar(select(func.count()).where(HistoryEvent.event == event)) == 1
    if event == "create_order":
        # One order, one armed timer: the losers left nothing behind.
        timers = db.session.scalar(select(func.count()).select_from(Timer))
        assert timers == timers_before + 1
        assert order_of(after.id)["number"].endswith(f"{seq + 1:03d}")
    verdicts = list(verify_all(db.session))
    assert verdicts and all(v.ok for v in verdicts), [v.describe() for v in verdicts]

    # The application is still usable: the next event goes through normally.
    if event == "accept_pledge":
        eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    else:
        eng.fire(who.application_id, "payment_expired", SYSTEM, {})
    assert all(v.ok for v in verify_all(db.session))


@pytest.mark.parametrize("with_version", [False, True], ids=["plain", "expected_version"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_postgres_one_of_twenty_wins(pg_app: Flask, scenario: str, with_version: bool) -> None:
    bystander = new_applicant(1)
    who = new_applicant(2)
    check_race(pg_app, who, scenario, with_version)
    assert application(bystander.application_id).seq == 0


@pytest.mark.parametrize("with_version", [False, True], ids=["plain", "expected_version"])
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_sqlite_one_of_twenty_wins(app: Flask, scenario: str, with_version: bool) -> None:
    assert db.engine.dialect.name == "sqlite" and db.engine.url.database
    journal = db.session.connection().exec_driver_sql("PRAGMA journal_mode").scalar()
    assert journal == "wal"
    bystander = new_applicant(1)
    who = new_applicant(2)
    check_race(app, who, scenario, with_version)
    assert application(bystander.application_id).seq == 0

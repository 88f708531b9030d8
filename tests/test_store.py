"""The SQL Store on PostgreSQL: a transition's writes go out as one statement, and that
statement keeps every write of the ORM path (history, outbox, timers cancelled and armed,
the versioned UPDATE), also across a migration. Skipped without TEST_DATABASE_URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import event, select, update

from gzsb.audit.service import verify_all
from gzsb.bootstrap import engine
from gzsb.config import ROOT
from gzsb.errors import EventNotAvailable, StaleApplication
from gzsb.extensions import db
from gzsb.models import Application, ConfirmationPoint, HistoryEvent, Outbox, Timer
from gzsb.store import publish
from gzsb.workflow.loader import load_flow, load_flow_file
from tests.drive import ADMIN, application, history
from tests.support import SYSTEM, new_applicant, student_payload, to_payment, to_verified


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements the engine sends while the block runs (COMMIT not included)."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", note)


def test_a_transition_is_the_row_lock_and_one_write(pg_app: Flask) -> None:
    who = new_applicant(1)
    eng = engine()
    db.session.commit()
    with statements() as seen:
        fired = eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    assert seen == ["SELECT", "WITH"]
    db.session.expire_all()
    record = application(who.application_id)
    assert (record.state, record.seq, record.head, record.version) == ("pledged", 1, fired.hash, fired.version)
    (row,) = history(who.application_id)
    assert (row.event, row.seq, row.hash) == ("accept_pledge", 1, fired.hash)
    # The ORM object agrees with the row: another transition needs no reload and no fix-up.
    eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    assert [r.seq for r in history(who.application_id)] == [1, 2]


def test_a_column_the_step_sets_on_the_row_goes_in_the_one_write(pg_app: Flask) -> None:
    # 基本信息 sets the confirmation point on the row: no UPDATE of its own, and stored.
    who = new_applicant(11)
    eng = engine()
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    before = application(who.application_id).version
    with statements() as seen:
        fired = eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    assert "UPDATE" not in seen and seen.count("WITH") == 1, seen
    db.session.expire_all()
    record = application(who.application_id)
    point = db.session.scalar(select(ConfirmationPoint.id).where(ConfirmationPoint.code == "NK01"))
    assert (record.confirmation_point_id, record.version) == (point, before + 1) == (point, fired.version)
    assert student_payload(who)["confirmation_point"] == "NK01"


def test_timers_and_outbox_in_the_one_statement(pg_app: Flask) -> None:
    who = new_applicant(2)
    eng = engine()
    to_verified(eng, who)
    jobs = db.session.scalars(select(Outbox).where(Outbox.application_id == who.application_id)).all()
    assert any(j.kind == "job" and j.payload.get("name") == "face_match" for j in jobs)
    assert all(j.created_at is not None and j.attempts == 0 for j in jobs)

    eng.fire(who.application_id, "create_order", who.actor, {})  # payment_pending arms the expiry timer
    (armed,) = db.session.scalars(select(Timer).where(Timer.application_id == who.application_id)).all()
    assert (armed.state, armed.fired_at, armed.armed_seq) == (
        "payment_pending",
        None,
        application(who.application_id).seq,
    )

    eng.fire(who.application_id, "payment_expired", SYSTEM, {})  # leaving payment_pending cancels it
    eng.fire(who.application_id, "create_order", who.actor, {})  # and entering again arms a new one
    db.session.expire_all()
    timers = db.session.scalars(select(Timer).where(Timer.application_id == who.application_id).order_by(Timer.id))
    assert [(t.outcome, t.fired_at is None) for t in timers] == [("cancelled", False), ("", True)]
    assert all(v.ok for v in verify_all(db.session))


def test_a_stale_version_writes_nothing(pg_app: Flask) -> None:
    who = new_applicant(3)
    eng = engine()
    with pytest.raises(StaleApplication):
        eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True}, expected_version=7)
    assert history(who.application_id) == []
    assert db.session.scalar(select(Application.state).where(Application.id == who.application_id)) == "started"


def test_a_migration_switches_the_flow_in_the_same_transaction(pg_app: Flask) -> None:
    who = new_applicant(4)
    eng = engine()
    to_payment(eng, who)
    text = load_flow_file(ROOT / "flows" / "enrollment.yaml").text.replace("payment_hours: 24", "payment_hours: 48")
    assert "payment_hours: 48" in text
    target = load_flow(text, "longer.yaml")
    version, _ = publish(db.session, target, "admin")
    fired = eng.migrate(who.application_id, target, mapping={}, actor=ADMIN, approved_by="account:902")
    db.session.expire_all()
    record = application(who.application_id)
    assert (record.flow_version_id, record.seq, record.head) == (version.id, fired.seq, fired.hash)
    assert (
        db.session.scalar(
            select(HistoryEvent.flow_sha256).where(
                HistoryEvent.application_id == who.application_id, HistoryEvent.seq == fired.seq
            )
        )
        == target.sha256
    )
    open_timers = db.session.scalars(
        select(Timer).where(Timer.application_id == who.application_id, Timer.fired_at.is_(None))
    ).all()
    assert [t.armed_seq for t in open_timers] == [fired.seq]
    eng.fire(who.application_id, "payment_expired", SYSTEM, {})  # the next transition runs on the new flow
    assert all(v.ok for v in verify_all(db.session))


def test_each_request_thread_has_its_own_session(app: Flask) -> None:
    """gunicorn's gthread workers run requests on threads: Flask-SQLAlchemy must scope the
    session (and so its connection and transaction) to each request's app context."""
    sessions: list[object] = []
    barrier = threading.Barrier(2)

    def request() -> None:
        with app.test_request_context("/"):
            barrier.wait(timeout=10)  # both requests are in flight at once
            sessions.append(db.session())
            db.session.remove()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(sessions) == 2 and sessions[0] is not sessions[1]


def test_after_mere_reads_the_transition_goes_on_in_the_same_transaction(pg_app: Flask) -> None:
    who = new_applicant(5)
    eng = engine()
    db.session.commit()
    commits: list[int] = []

    def note(_conn) -> None:  # type: ignore[no-untyped-def]
        commits.append(1)

    event.listen(db.engine, "commit", note)
    try:
        assert db.session.get(Application, who.application_id) is not None  # a page reads first
        eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    finally:
        event.remove(db.engine, "commit", note)
    assert len(commits) == 1  # only the transition's own


@pytest.mark.parametrize("how", ["flushed", "pending", "statement"])
def test_what_the_caller_wrote_is_committed_before_the_transition(pg_app: Flask, how: str) -> None:
    who = new_applicant(6)
    eng = engine()
    db.session.commit()
    if how == "statement":
        db.session.execute(update(ConfirmationPoint).values(name="改过的名字"))
    else:
        db.session.add(ConfirmationPoint(code="XQ01", name="西青区招生考试中心"))
        if how == "flushed":
            db.session.flush()
    with pytest.raises(EventNotAvailable):
        eng.fire(who.application_id, "face_matched", SYSTEM, {})  # not from the initial state: fails
    db.session.rollback()
    names = {p.code: p.name for p in db.session.scalars(select(ConfirmationPoint))}
    if how == "statement":
        assert names["NK01"] == "改过的名字"
    else:
        assert names.get("XQ01") == "西青区招生考试中心"

"""gzsb.common.lazytx on a real PostgreSQL: a lazy session reads without a transaction, and its
first write, row lock or text statement starts one that holds until commit or rollback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from flask import Flask, Response, request
from psycopg.pq import TransactionStatus
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from gzsb.bootstrap import vault
from gzsb.cli.demo import DEMO_PASSWORD, add_demo_student, demo_student
from gzsb.common.lazytx import begin_now, install_lazy_transactions
from gzsb.config import test_database_url
from gzsb.extensions import db
from gzsb.models import Application
from gzsb.store import SqlStore
from tests.support import PASSWORD_HASH, log_in, new_applicant

METADATA = MetaData()
READING: list[bool] = []  # non-empty: sessions beginning now are lazy (as in a GET request)


@contextmanager
def reading() -> Iterator[None]:
    READING.append(True)
    try:
        yield
    finally:
        READING.pop()


ROWS = Table(
    f"lazytx_{uuid.uuid4().hex[:8]}", METADATA, Column("id", Integer, primary_key=True), Column("note", String)
)


@pytest.fixture
def engine() -> Iterator[Engine]:
    url = test_database_url()
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL integration test skipped")
    # One pooled connection: the next session gets the connection the last one gave back.
    made = create_engine(url, pool_size=1, max_overflow=0)
    install_lazy_transactions(made, when=lambda: bool(READING))
    METADATA.create_all(made)
    with made.begin() as conn:
        conn.execute(insert(ROWS), [{"id": 1, "note": "one"}])
    yield made
    METADATA.drop_all(made)
    made.dispose()


def _status(session: Session) -> TransactionStatus:
    dbapi = session.connection().connection.dbapi_connection
    assert isinstance(dbapi, psycopg.Connection)
    return dbapi.info.transaction_status


def _other(engine: Engine) -> psycopg.Connection:
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(dsn, autocommit=True)


def test_reads_leave_no_transaction_open_and_a_plain_session_still_has_one(engine: Engine) -> None:
    with reading(), Session(engine) as lazy:
        assert lazy.execute(select(ROWS.c.note)).scalar_one() == "one"
        assert _status(lazy) == TransactionStatus.IDLE  # no BEGIN went out
    with Session(engine) as plain:  # the same pooled connection, given back out of autocommit
        assert plain.execute(select(ROWS.c.note)).scalar_one() == "one"
        assert _status(plain) == TransactionStatus.INTRANS


def test_a_connection_killed_while_reading_is_not_handed_out_in_autocommit(engine: Engine) -> None:
    with reading(), Session(engine) as lazy, _other(engine) as other:
        lazy.execute(select(ROWS.c.id)).all()
        pid = lazy.execute(select(func.pg_backend_pid())).scalar_one()
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # The pool's only connection was that one: the next session must get a working one that
    # is not in autocommit (else its writes would each commit on their own).
    with Session(engine) as plain:
        try:
            plain.execute(select(ROWS.c.id)).all()
        except OperationalError:  # the dead connection noticed at its first statement: a 503 once
            plain.rollback()
            plain.execute(select(ROWS.c.id)).all()
        assert _status(plain) == TransactionStatus.INTRANS


def test_the_first_write_starts_a_transaction_that_rollback_undoes(engine: Engine) -> None:
    with reading(), Session(engine) as lazy:
        lazy.execute(select(ROWS.c.id)).all()
        lazy.execute(insert(ROWS).values(id=2, note="two"))
        assert _status(lazy) == TransactionStatus.INTRANS
        lazy.execute(insert(ROWS).values(id=3, note="three"))
        lazy.rollback()  # in autocommit both rows would be there now
    with Session(engine) as check:
        assert check.execute(select(ROWS.c.id).order_by(ROWS.c.id)).scalars().all() == [1]


def test_a_row_lock_is_held_until_the_session_ends(engine: Engine) -> None:
    with reading(), Session(engine) as lazy, _other(engine) as other:
        lazy.execute(select(ROWS.c.id).where(ROWS.c.id == 1).with_for_update()).scalar_one()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute(f"SELECT id FROM {ROWS.name} WHERE id = 1 FOR UPDATE NOWAIT")
        lazy.rollback()
        assert other.execute(f"SELECT id FROM {ROWS.name} WHERE id = 1 FOR UPDATE NOWAIT").fetchone() == (1,)


def test_text_statements_run_in_a_transaction(engine: Engine) -> None:
    key = 741_852_963
    with reading(), Session(engine) as lazy, _other(engine) as other:
        lazy.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})  # a lock for the transaction
        assert other.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone() == (False,)
        lazy.commit()
        assert other.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone() == (True,)
        other.execute("SELECT pg_advisory_unlock(%s)", (key,))


def test_begin_now_puts_even_plain_reads_in_one_transaction(engine: Engine) -> None:
    with reading(), Session(engine) as lazy:
        lazy.execute(select(ROWS.c.id)).all()
        begin_now(lazy)
        lazy.execute(select(ROWS.c.id)).all()
        assert _status(lazy) == TransactionStatus.INTRANS


def test_a_transition_in_a_lazy_session_runs_in_one_transaction(pg_app: Flask) -> None:
    who = new_applicant(7302)
    db.session.remove()
    with pg_app.test_request_context(method="GET"):  # a session begun in a GET reads in autocommit
        assert db.session.get(Application, who.application_id) is not None
        assert _status(db.session()) == TransactionStatus.IDLE
        store = SqlStore(db.session())
        with store.transaction():
            store.lock(who.application_id)  # the row lock must last until the transition commits
            assert _status(db.session()) == TransactionStatus.INTRANS


def test_a_student_page_reads_in_autocommit_and_a_post_does_not(pg_app: Flask) -> None:
    seen: list[tuple[str, str, bool, TransactionStatus]] = []
    # Under a WSGI server each request has its own app context and so its own session; the
    # fixture's app context outlives requests: start each request with a new session here.
    pg_app.before_request_funcs.setdefault(None, []).insert(0, db.session.remove)

    @pg_app.after_request
    def _look(response: Response) -> Response:
        dbapi = db.session.connection().connection.dbapi_connection
        assert isinstance(dbapi, psycopg.Connection)
        seen.append((request.method, request.path, dbapi.autocommit, dbapi.info.transaction_status))
        return response

    who = new_applicant(7303)
    client = pg_app.test_client()
    log_in(client, demo_student(who.index).id_number, who.password)
    assert client.get("/process").status_code == 200
    assert ("GET", "/process", True, TransactionStatus.IDLE) in seen  # one SELECT, no BEGIN
    assert ("POST", "/login", False, TransactionStatus.INTRANS) in seen  # a log-in writes: a transaction


def test_a_get_that_writes_commits_what_it_wrote(pg_app: Flask) -> None:
    # The 流程页面's first visit starts the application: a write inside a GET request.
    account = add_demo_student(db.session, vault(), demo_student(7301), password_hash=PASSWORD_HASH)
    db.session.commit()
    client = pg_app.test_client()
    log_in(client, demo_student(7301).id_number, DEMO_PASSWORD)
    assert client.get("/process").status_code == 200
    db.session.remove()
    assert db.session.scalar(select(Application.state).where(Application.account_id == account.id)) is not None

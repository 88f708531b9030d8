"""gzsb.common.dbpool on a real PostgreSQL: a dead pooled connection is replaced before use, and a
connection used a moment ago goes out without a ping (the round trip pool_pre_ping cost)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from gzsb.common.dbpool import ping_idle_connections
from gzsb.config import test_database_url
from gzsb.extensions import db

IDLE = 0.2  # seconds: the tests wait a little longer than this to make a connection "idle"


@pytest.fixture
def pg_url() -> str:
    url = test_database_url()
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL integration test skipped")
    return url


def _engine(url: str, *, ping: bool) -> Iterator[tuple[Engine, list[int]]]:
    # One pooled connection, so that "the next checkout" is the connection the test killed.
    engine = create_engine(url, pool_size=1, max_overflow=0)
    pings: list[int] = []
    if ping:
        ping_idle_connections(engine, IDLE)
        real = engine.dialect.do_ping

        def counted(dbapi_connection: Any) -> bool:
            pings.append(1)
            return real(dbapi_connection)

        engine.dialect.do_ping = counted  # type: ignore[method-assign]  # SQLAlchemy's, counted
    yield engine, pings
    engine.dispose()


@pytest.fixture
def pinging(pg_url: str) -> Iterator[tuple[Engine, list[int]]]:
    yield from _engine(pg_url, ping=True)


@pytest.fixture
def bare(pg_url: str) -> Iterator[tuple[Engine, list[int]]]:
    yield from _engine(pg_url, ping=False)


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    admin.dispose()
    time.sleep(0.05)  # the backend exits asynchronously


def test_a_connection_used_a_moment_ago_is_not_pinged(pinging: tuple[Engine, list[int]]) -> None:
    engine, pings = pinging
    first = _backend_pid(engine)
    for _ in range(5):
        assert _backend_pid(engine) == first  # the same pooled connection, checked out again at once
    assert pings == []


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(pg_url: str, pinging: tuple[Engine, list[int]]) -> None:
    engine, pings = pinging
    killed = _backend_pid(engine)
    _terminate(pg_url, killed)
    time.sleep(IDLE * 1.5)
    # The checkout pings the idle connection, finds it dead and connects again: no error.
    assert _backend_pid(engine) != killed
    assert pings == [1]


def test_without_the_ping_the_dead_connection_fails_its_first_statement(
    pg_url: str, bare: tuple[Engine, list[int]]
) -> None:
    # What the ping above prevents (so that test can fail): the same steps with no ping.
    engine, _ = bare
    killed = _backend_pid(engine)
    _terminate(pg_url, killed)
    time.sleep(IDLE * 1.5)
    with pytest.raises(OperationalError):
        _backend_pid(engine)
    assert _backend_pid(engine) != killed  # the failure invalidated it; the next one reconnects


def test_the_app_pings_idle_connections_instead_of_every_checkout(pg_app: Flask) -> None:
    engine = db.engine
    assert engine.pool._pre_ping is False  # no round trip on every checkout
    assert engine.pool.dispatch.checkout, "gzsb.common.dbpool's checkout listener is installed"

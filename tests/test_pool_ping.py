"""Pooled PostgreSQL connections are pinged on checkout only after sitting idle
(``gzsb.app.ping_when_idle``): one the server dropped meanwhile is replaced without a failed
request, and a connection in steady use costs no extra round trip."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from gzsb.app import ping_when_idle
from tests.conftest import test_database_url


def _engine(idle_seconds: float) -> Engine:
    url = test_database_url()
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL integration test skipped")
    engine = create_engine(url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle_seconds)
    return engine


def _backend(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("select pg_backend_pid()")).scalar_one())


def _terminate(engine: Engine, pid: int) -> None:
    other = create_engine(engine.url, poolclass=None)
    with other.connect() as conn:
        conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()
    other.dispose()
    time.sleep(0.2)  # the backend exits


def test_a_connection_dropped_while_idle_is_replaced_without_an_error() -> None:
    engine = _engine(idle_seconds=0.0)
    try:
        first = _backend(engine)
        _terminate(engine, first)
        assert _backend(engine) != first  # pinged, found dead, replaced: no error reached the caller
    finally:
        engine.dispose()


def test_a_recently_used_connection_is_not_pinged() -> None:
    # Within the idle window no ping runs: the dead connection is only found by the statement
    # itself (which then fails and is invalidated; the web layer answers 503).
    engine = _engine(idle_seconds=3600.0)
    try:
        first = _backend(engine)
        _terminate(engine, first)
        with pytest.raises(DBAPIError) as failed:
            _backend(engine)
        assert failed.value.connection_invalidated
        assert _backend(engine) != first  # the pool replaced it afterwards
    finally:
        engine.dispose()

"""Pessimistic disconnect handling that costs a round trip only when it can matter.

SQLAlchemy's ``pool_pre_ping`` pings every connection on every checkout: one more round trip
on each request and on each ``fire()`` (a fifth of a transition's round trips). A connection
that came back to the pool a moment ago was alive a moment ago; the one that sat idle is the
one a database restart, a failover or a firewall's idle timeout may have killed. So only a
connection idle for longer than ``idle_seconds`` is pinged; a dead one is replaced (the pool
retries the checkout) and the pool's other connections are recycled, as with pre-ping.

A connection killed in the last ``idle_seconds`` fails its first statement instead; SQLAlchemy
then invalidates the pool (a disconnect error), so the requests after it reconnect.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError

# ConnectionPoolEntry.info: dropped with the DB-API connection, so a new one has no entry.
CHECKED_IN = "gzsb.checked_in"


def ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection at checkout only when it sat in the pool for longer than
    ``idle_seconds`` (use instead of ``pool_pre_ping``)."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(CHECKED_IN)
        if since is None or time.monotonic() - since <= idle_seconds:
            return  # a new connection, or one in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool replaces this one, retries the checkout and recycles the others.
                raise InvalidatePoolError(f"pooled connection was dead after {time.monotonic() - since:.0f}s") from exc
            raise

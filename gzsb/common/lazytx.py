"""Reads without BEGIN and ROLLBACK: a transaction starts at the first statement that needs one.

A student page is one SELECT, yet inside a transaction it costs three round trips (BEGIN, the
SELECT, ROLLBACK) and about four times the PostgreSQL CPU of the SELECT alone. Under READ
COMMITTED every statement takes its own snapshot anyway, so a plain SELECT sees exactly the
same rows in autocommit as inside a transaction; what a transaction adds is atomicity for
writes and the lifetime of locks. So a session that begins while the engine's ``when()`` is
true (for the web: during GET and HEAD requests) gets its PostgreSQL connection in autocommit,
and before the first statement that is not a plain read (any INSERT/UPDATE/DELETE, a SELECT …
FOR UPDATE/SHARE, ``text()``, a SAVEPOINT) the connection leaves autocommit: that statement and
everything after it run in one transaction, committed or rolled back by the session as usual.
A connection goes back to the pool out of autocommit (or closed, if the driver cannot switch
it: the pool then replaces it).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

# ConnectionPoolEntry.info: this DB-API connection is in autocommit for a lazy session.
AUTOCOMMIT = "gzsb.lazy_autocommit"
# Engines served this way, with their ``when`` (tests build many apps: one Session listener
# checks them all).
_ENGINES: weakref.WeakKeyDictionary[Engine, Callable[[], bool]] = weakref.WeakKeyDictionary()
_LOCKING = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b", re.IGNORECASE)


def plain_read(context: Any, statement: str) -> bool:
    """A SQLAlchemy SELECT that takes no row lock: it needs no transaction of its own.
    Text, DDL and driver-level SQL never count as reads (they may do anything)."""
    compiled = getattr(context, "compiled", None)
    return (
        compiled is not None
        and isinstance(compiled.statement, Select)
        and not context.isinsert
        and not context.isupdate
        and not context.isdelete
        # SQLAlchemy writes locking clauses as " FOR UPDATE" and the like: the plain
        # substring test spares most statements the regular expression.
        and (" FOR " not in statement or _LOCKING.search(statement) is None)
    )


def begin_now(session: Session) -> None:
    """Start ``session``'s transaction now if it is reading in autocommit: for work that must
    be one transaction whatever it runs (row locks taken through the driver, say)."""
    connection = session.connection()
    if connection.info.pop(AUTOCOMMIT, None):
        connection.connection.dbapi_connection.autocommit = False  # type: ignore[union-attr]


@event.listens_for(Session, "after_begin")
def _begun(session: Session, _transaction: Any, connection: Any) -> None:
    when = _ENGINES.get(connection.engine)
    if when is not None and when():
        # Nothing has run on it yet (the driver sends BEGIN with the first statement), so
        # the driver lets autocommit change.
        connection.connection.dbapi_connection.autocommit = True
        connection.info[AUTOCOMMIT] = True


def install_lazy_transactions(engine: Engine, when: Callable[[], bool]) -> None:
    """Let sessions on ``engine`` (PostgreSQL through psycopg) that begin while ``when()`` is
    true read in autocommit, as described above."""
    _ENGINES[engine] = when

    @event.listens_for(engine, "before_cursor_execute")
    def _before(connection: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        info = connection.info
        if not info.get(AUTOCOMMIT) or plain_read(context, statement):
            return
        # Idle between autocommit statements, so the driver lets it change: this statement
        # goes out after a BEGIN, and the session's commit or rollback ends the transaction.
        connection.connection.dbapi_connection.autocommit = False
        del info[AUTOCOMMIT]

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        if not record.info.pop(AUTOCOMMIT, None) or dbapi_connection is None:
            return
        try:
            dbapi_connection.autocommit = False
        except engine.dialect.loaded_dbapi.Error:
            # A broken connection (the server went away): never hand it out in autocommit,
            # where a later session's writes would each commit on their own.
            dbapi_connection.close()

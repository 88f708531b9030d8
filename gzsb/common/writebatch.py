"""A transition on PostgreSQL, as ``gzsb.store.SqlStore`` runs it: the row lock by Core
(``lock_row``, a ``LockedApplication``) and the one statement its writes go out as
(``WriteBatch``): the history row, outbox rows, timer cancel and arming, and the versioned
application UPDATE as data-modifying CTEs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Dialect, Table, bindparam, insert, inspect, select, update
from sqlalchemy.orm import Session

from gzsb.errors import StaleApplication
from gzsb.models import Application, HistoryEvent, Outbox, Timer

# The statement of each batch shape (timers cancelled or not, and the columns and number of
# rows it inserts into each table), built once with its values as bound parameters, so that
# SQLAlchemy compiles it once per process: built anew with the values in it, it was compiled
# on every transition (the largest part of a fire()'s CPU).
_Shape = tuple[bool, tuple[tuple[str, ...], ...], tuple[int, ...], tuple[str, ...]]
_BATCH_STATEMENTS: dict[_Shape, Any] = {}
_BATCH_TABLES = (("events", HistoryEvent.__table__), ("effects", Outbox.__table__), ("armed", Timer.__table__))
_APPLICATION_VALUES = ("state", "data", "seq", "head", "updated_at")
# Other columns of the row a step or a migration may set on the record (the confirmation
# point, the flow version): written by the batch's UPDATE too.
_FOLDED = ("uid", "account_id", "flow_version_id", "confirmation_point_id")
_LOCKED = ("id", "version", "state", "seq", "head", "data", *_FOLDED)
# Built once: a Core SELECT … FOR UPDATE of the columns a transition reads. The ORM's entity
# load (identity map, populate_existing, attribute instrumentation) cost a third more CPU.
_ROW_LOCK = (
    select(*(Application.__table__.c[key] for key in _LOCKED))
    .where(Application.__table__.c.id == bindparam("application_id"))
    .with_for_update()
)
_MAPPER = inspect(Application)


@dataclass(slots=True, eq=False)
class LockedApplication:
    """An application row locked for one transition (the engine's ``Record``). Plain
    attributes: a step sets a column (``confirmation_point_id``) on it, and ``WriteBatch``
    writes what differs from the row as loaded; ``slots`` makes any other attribute an error."""

    id: int
    version: int
    state: str
    seq: int
    head: str
    data: dict[str, Any]
    uid: str
    account_id: int
    flow_version_id: int
    confirmation_point_id: int | None
    loaded: tuple[Any, ...] = ()  # the _FOLDED columns as locked

    def changed_columns(self) -> dict[str, Any]:
        return {
            key: getattr(self, key)
            for key, before in zip(_FOLDED, self.loaded, strict=True)
            if getattr(self, key) != before
        }


@dataclass(frozen=True)
class _Compiled:
    sql: str
    compiled: Any
    processors: tuple[tuple[str, Any], ...]  # (bound name, the type's bind processor) where there is one


_COMPILED: dict[tuple[int, str, str], _Compiled] = {}


def _compiled(statement: Any, dialect: Dialect) -> _Compiled:
    key = (id(statement), dialect.name, dialect.driver)  # the statements are module-level and live for good
    found = _COMPILED.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect)
        processors = []
        for bind in compiled.binds.values():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((compiled.bind_names[bind], process))
        found = _COMPILED[key] = _Compiled(str(compiled), compiled, tuple(processors))
    return found


def _first_row(session: Session, statement: Any, params: dict[str, Any]) -> Any:
    """The first row of ``statement`` run on the session's connection (its transaction) by the
    driver, with the SQL and parameter processing SQLAlchemy compiled once. SQLAlchemy's own
    execution (context, parameters, result set-up) cost ≈ 0.1 ms of CPU per statement, a
    tenth of a transition. Its cursor events still fire, and a driver error goes through
    SQLAlchemy's handling (a lost connection invalidates the pool's, errors are its classes)."""
    conn = session.connection()
    ready = _compiled(statement, conn.dialect)
    values = ready.compiled.construct_params(params)
    for name, process in ready.processors:
        values[name] = process(values[name])
    cursor = conn.connection.cursor()
    try:
        if conn.dispatch.before_cursor_execute:
            conn.dispatch.before_cursor_execute(conn, cursor, ready.sql, values, None, False)
        cursor.execute(ready.sql, values)
        row = cursor.fetchone()
        if conn.dispatch.after_cursor_execute:
            conn.dispatch.after_cursor_execute(conn, cursor, ready.sql, values, None, False)
    except conn.dialect.loaded_dbapi.Error as exc:
        conn._handle_dbapi_exception(exc, ready.sql, values, cursor, None)  # raises
    finally:
        cursor.close()
    return row


def lock_row(session: Session, application_id: int) -> LockedApplication | None:
    """SELECT … FOR UPDATE the row, in the session's transaction."""
    row = _first_row(session, _ROW_LOCK, {"application_id": application_id})
    if row is None:
        return None
    # An ORM object of this row the caller read earlier would be stale once the transition
    # writes by Core: it reloads when next used (a commit expires it anyway).
    known = session.identity_map.get(_MAPPER.identity_key_from_primary_key((application_id,)))
    if known is not None:
        session.expire(known)
    return LockedApplication(*row, loaded=tuple(row[len(_LOCKED) - len(_FOLDED) :]))


def _with_defaults(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the columns' Python-side defaults the ORM would have applied, so that
    rows of one table always bind the same columns."""
    out = dict(row)
    for column in table.columns:
        if column.key in out or column.primary_key or column.default is None:
            continue
        default = column.default
        if default.is_scalar:
            out[column.key] = default.arg  # type: ignore[attr-defined]
        elif default.is_callable:
            out[column.key] = default.arg(None)  # type: ignore[attr-defined]  # SQLAlchemy wraps it to take a context
    return out


def _batch_statement(shape: _Shape) -> Any:
    statement = _BATCH_STATEMENTS.get(shape)
    if statement is not None:
        return statement
    cancel, columns, counts, folded = shape
    app = Application.__table__
    ctes = []
    if cancel:
        t = Timer.__table__
        ctes.append(
            update(t)
            .where(t.c.application_id == bindparam("b_app", type_=t.c.application_id.type), t.c.fired_at.is_(None))
            .values(fired_at=bindparam("b_cancel_at", type_=t.c.fired_at.type), outcome="cancelled")
            .cte("cancelled")
        )
    # Sibling CTEs do not see each other's rows: the timers armed here stay open.
    # One single-row INSERT per row: SQLAlchemy cannot cache a multi-row VALUES.
    for (name, table), keys, count in zip(_BATCH_TABLES, columns, counts, strict=True):
        for i in range(count):
            row = {key: bindparam(f"{name}{i}_{key}", type_=table.c[key].type) for key in keys}
            ctes.append(insert(table).values(row).cte(f"{name}{i}"))
    statement = (
        update(app)
        .where(app.c.id == bindparam("b_app", type_=app.c.id.type), app.c.version == bindparam("b_old"))
        .values(
            {
                **{key: bindparam(f"b_{key}", type_=app.c[key].type) for key in (*_APPLICATION_VALUES, *folded)},
                "version": app.c.version + 1,
            }
        )
        .returning(app.c.version)
        .add_cte(*ctes)
    )
    _BATCH_STATEMENTS[shape] = statement
    return statement


@dataclass
class WriteBatch:
    """One transition's writes on PostgreSQL, sent as one statement by ``write``: CTEs that
    insert the history, outbox and timer rows and cancel the open timers, and the versioned
    UPDATE of the application (still ``WHERE version = old``; UNIQUE(application_id, seq) still
    refuses a lost race)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    cancel_at: datetime | None = None

    def write(
        self, session: Session, record: LockedApplication, *, state: str, data: dict[str, Any], seq: int, head: str
    ) -> None:
        # Columns of the row itself that a step or a migration set go in this statement's UPDATE.
        folded = record.changed_columns()
        # What a step changed through the ORM (orders, corrections) goes first.
        if session.new or session.dirty or session.deleted:
            session.flush()
        old = record.version
        now = datetime.now(UTC)
        params: dict[str, Any] = {
            "b_app": record.id, "b_old": old, "b_state": state, "b_data": data, "b_seq": seq, "b_head": head,
            "b_updated_at": now, "b_cancel_at": self.cancel_at, **{f"b_{key}": v for key, v in folded.items()},
        }  # fmt: skip
        columns: list[tuple[str, ...]] = []
        counts: list[int] = []
        for (name, table), rows in zip(_BATCH_TABLES, (self.history, self.outbox, self.timers), strict=True):
            complete = [_with_defaults(table, row) for row in rows]
            keys = tuple(sorted(complete[0])) if complete else ()
            for i, row in enumerate(complete):
                if tuple(sorted(row)) != keys:  # the statement's shape: every row binds the same columns
                    raise ValueError(f"{table.name} rows of one batch name other columns: {keys} / {sorted(row)}")
                params.update({f"{name}{i}_{key}": value for key, value in row.items()})
            columns.append(keys)
            counts.append(len(complete))
        statement = _batch_statement((self.cancel_at is not None, tuple(columns), tuple(counts), tuple(sorted(folded))))
        if _first_row(session, statement, params) is None:
            raise StaleApplication(f"application {record.uid} was changed by someone else (version {old})")
        # The row now holds these values.
        record.state, record.data, record.seq, record.head, record.version = state, data, seq, head, old + 1
        record.loaded = tuple(getattr(record, key) for key in _FOLDED)

"""The one statement a transition's writes go out as on PostgreSQL (``WriteBatch``): the
history row, outbox rows, timer cancel and arming, and the versioned application UPDATE as
data-modifying CTEs, used by ``gzsb.store.SqlStore``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, inspect, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

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
# Other columns of the row a step or a migration may set on the ORM object (the confirmation
# point, the flow version): written by the batch's UPDATE instead of an ORM UPDATE of their own.
_FOLDED = frozenset(c.key for c in Application.__table__.columns) - {"id", "version", *_APPLICATION_VALUES}


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
        self, session: Session, record: Application, *, state: str, data: dict[str, Any], seq: int, head: str
    ) -> None:
        # Columns of the row itself that a step or a migration set go in this statement's UPDATE.
        tracked = inspect(record)
        folded = {key: tracked.dict[key] for key in tracked.committed_state if key in _FOLDED}
        for key, value in folded.items():
            set_committed_value(record, key, value)  # no longer a pending change for the flush below
        # What else a step changed through the ORM (orders, corrections) goes first.
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
        if session.connection().execute(statement, params).first() is None:
            raise StaleApplication(f"application {record.uid} was changed by someone else (version {old})")
        # The row now holds these values: the ORM object says so without another UPDATE.
        for key, value in (
            ("state", state), ("data", data), ("seq", seq), ("head", head), ("updated_at", now), ("version", old + 1),
        ):  # fmt: skip
            set_committed_value(record, key, value)

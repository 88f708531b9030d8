"""The per-ID-number daily cap on face comparisons (issue 13), atomic in the database.

The flow's ``attempts_left`` guard limits one application; this limits a person: every
application of one ID number together, per Beijing day. One statement both counts and
checks (``INSERT … ON CONFLICT DO UPDATE SET count = count + 1 WHERE count < cap
RETURNING count``): two parallel uploads can never both take the last attempt, and a
refused attempt does not raise the count. It runs inside the transition's transaction, so
an upload whose event fails gives its attempt back with everything else.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gzsb.common.beijing import BEIJING, as_utc
from gzsb.models import FaceAttemptDay

log = logging.getLogger(__name__)

DAILY_CAP_REACHED = "今日人脸比对次数已达上限（每个身份证号每天{cap}次），请明天再试，或选择【申请人工认证】"


def beijing_day(now: datetime) -> str:
    return as_utc(now).astimezone(BEIJING).date().isoformat()


_TAKE: dict[str, Any] = {}


def _take_statement(dialect: str) -> Any:
    statement = _TAKE.get(dialect)
    if statement is None:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        table = FaceAttemptDay.__table__
        statement = _TAKE[dialect] = (
            insert(table)
            .values(id_number_index=bindparam("index"), day=bindparam("day"), count=1)
            .on_conflict_do_update(
                index_elements=[table.c.id_number_index, table.c.day],
                set_={"count": table.c.count + 1},
                where=table.c.count < bindparam("cap"),
            )
            .returning(table.c.count)
        )
    return statement


def take_attempt(session: Session, id_number_index: str, now: datetime, cap: int) -> int | None:
    """Count one comparison for the ID number today; the new count, or None when the cap
    was already reached (nothing changed)."""
    if cap <= 0:
        return None
    conn = session.connection()  # Core: the statement is built once per dialect, no ORM execution
    params = {"index": id_number_index, "day": beijing_day(now), "cap": cap}
    count = conn.execute(_take_statement(conn.dialect.name), params).scalar_one_or_none()
    if count is None:
        log.warning("face attempts: daily cap %d reached for an ID number (index %s…)", cap, id_number_index[:8])
    return count


def attempts_today(session: Session, id_number_index: str, now: datetime) -> int:
    """How many comparisons the ID number started today (for the page; never for deciding)."""
    count = session.scalar(
        select(FaceAttemptDay.count).where(
            FaceAttemptDay.id_number_index == id_number_index, FaceAttemptDay.day == beijing_day(now)
        )
    )
    return int(count or 0)

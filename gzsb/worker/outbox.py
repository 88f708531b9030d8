"""Outbox jobs with a lease: the one background path of the 报名表 render and the sandbox notify.

A job is an ``Outbox`` row whose ``kind`` names the work. Whoever wants it done writes the
row (in its own transaction), then may queue it at once (the quick path); the tick queues
again every unfinished row whose lease ran out, so a job whose worker was killed, or that
was never queued, is not lost. Queueing claims the row by a compare-and-set on
``attempts`` (two consumers reading the same row: one wins), and the task carries that
number as its token: a task whose token is no longer the row's does nothing, so an old
copy that wakes up after a re-dispatch does not run the job twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from gzsb.models import Outbox

log = logging.getLogger(__name__)

RENDER_FORM = "render_form"
SANDBOX_NOTIFY = "sandbox_notify"
FLOW_JOB = "flow_job"  # an impact report or migration over a large fleet (gzsb.admin.flow_jobs)
# Issue 15: ask the gateway about an order with no notify yet, send a double or late payment
# back, close the gateway's order of an expired one.
PAYMENT_CHECK = "payment_check"
PAYMENT_REFUND = "payment_refund"
PAYMENT_CLOSE = "payment_close"
KINDS = (RENDER_FORM, SANDBOX_NOTIFY, FLOW_JOB, PAYMENT_CHECK, PAYMENT_REFUND, PAYMENT_CLOSE)
# Longer than any run of one job (the PDF's hard timeout, one notify POST).
LEASE = timedelta(minutes=5)
# A job queued this many times without finishing is left for a human (its last_error says why).
MAX_ATTEMPTS = 20

Enqueue = Callable[[str, int, int], None]  # (kind, outbox id, token)


def add(session: Session, kind: str, application_id: int | None = None, **payload: Any) -> Outbox:
    """Write a job row in the caller's transaction (flushed, so it has its id)."""
    if kind not in KINDS:
        raise LookupError(f"unknown outbox job {kind!r}; known: {', '.join(KINDS)}")
    item = Outbox(kind=kind, application_id=application_id, payload=payload)
    session.add(item)
    session.flush()
    return item


def pending(session: Session, kind: str, application_id: int) -> Outbox | None:
    """The unfinished job of this kind for the application, if there is one."""
    return session.scalars(
        select(Outbox)
        .where(Outbox.kind == kind, Outbox.application_id == application_id, Outbox.done_at.is_(None))
        .where(Outbox.attempts < MAX_ATTEMPTS)
        .order_by(Outbox.id.desc())
    ).first()


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes for timezone-aware columns.
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def available(item: Outbox, now: datetime) -> bool:
    lease = _utc(item.lease_until)
    return item.done_at is None and item.attempts < MAX_ATTEMPTS and (lease is None or lease <= now)


def claim(session: Session, item: Outbox, now: datetime, hold: timedelta = LEASE) -> int | None:
    """Take the row for one run: its new ``attempts`` (the run's token), or None when another
    consumer took it first or it is not available. Commits."""
    if not available(item, now):
        return None
    seen = item.attempts
    taken = session.execute(
        update(Outbox)
        .where(Outbox.id == item.id, Outbox.attempts == seen, Outbox.done_at.is_(None))
        .values(attempts=seen + 1, sent_at=now, lease_until=now + hold)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    session.refresh(item)
    return seen + 1 if taken else None


def dispatch(session: Session, item: Outbox, enqueue: Enqueue, now: datetime) -> bool:
    """Claim the row, then queue its task; a queue that is down leaves it to the tick."""
    token = claim(session, item, now)
    if token is None:
        return False
    try:
        enqueue(item.kind, item.id, token)
    except Exception as exc:  # noqa: BLE001 - the queue is down: the tick tries again
        item.lease_until = now
        item.last_error = f"enqueue failed: {type(exc).__name__}: {exc}"[:500]
        session.commit()
        log.warning("outbox %d (%s) could not be queued: %s", item.id, item.kind, exc)
        return False
    return True


def redispatch(session: Session, enqueue: Enqueue, now: datetime, limit: int = 200) -> int:
    """The tick's safety net: queue every unfinished job whose lease ran out (or that never
    had one). Returns how many were queued."""
    now = now.astimezone(UTC)
    due = session.scalars(
        select(Outbox)
        .where(
            Outbox.kind.in_(KINDS),
            Outbox.done_at.is_(None),
            Outbox.attempts < MAX_ATTEMPTS,
            or_(Outbox.lease_until.is_(None), Outbox.lease_until <= now),
        )
        .order_by(Outbox.id)
        .limit(limit)
    ).all()
    queued = 0
    for item in due:
        again = item.sent_at is not None
        if dispatch(session, item, enqueue, now):
            queued += 1
            if again:
                log.warning("outbox %d (%s) queued again: its run did not finish", item.id, item.kind)
    return queued


def start(session: Session, outbox_id: int, token: int) -> Outbox | None:
    """The row a task should work on, or None when it is finished or was queued again since."""
    item = session.get(Outbox, outbox_id)
    if item is None or item.done_at is not None or item.attempts != token:
        log.info("outbox %d: run %d is obsolete", outbox_id, token)
        return None
    return item


def finish(session: Session, item: Outbox, now: datetime, error: str = "") -> None:
    item.done_at, item.lease_until, item.last_error = now, None, error[:500]
    session.commit()


def fail(session: Session, item: Outbox, error: str) -> None:
    """Keep the lease: the tick queues it again when the lease runs out."""
    item.last_error = error[:500]
    session.commit()


def later(session: Session, item: Outbox, now: datetime, delay: float, **payload: Any) -> int:
    """Not finished: run again after ``delay`` seconds with ``payload`` merged. Returns the
    next run's token (the caller schedules it); the tick is the safety net after that."""
    item.payload = {**item.payload, **payload}
    item.attempts += 1
    item.sent_at, item.lease_until = now, now + timedelta(seconds=delay) + LEASE
    session.commit()
    return item.attempts

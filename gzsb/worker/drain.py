"""Work the background jobs do, independent of the task queue: fire due timers, drain the outbox."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from gzsb.adapters.sms import SmsSender
from gzsb.common.security import Vault
from gzsb.errors import ConflictError, ServiceError
from gzsb.identity.names import FACE_CHECKING
from gzsb.models import Account, Application, Outbox, Timer
from gzsb.workflow.engine import Actor, Engine

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
# Longer than one send through the SMS gateway (its HTTP timeout).
SMS_LEASE = timedelta(minutes=2)


def fire_due_timers(session: Session, engine: Engine, now: datetime, limit: int = 500) -> int:
    """Fire every due timer whose application is still where the timer was armed."""
    now = now.astimezone(UTC)
    due = session.scalars(
        select(Timer).where(Timer.fired_at.is_(None), Timer.due_at <= now).order_by(Timer.due_at).limit(limit)
    ).all()
    fired = 0
    for timer in due:
        timer_id, app_id = timer.id, timer.application_id
        app = session.get(Application, app_id)
        outcome = "obsolete"
        if app is not None and app.state == timer.state and app.seq == timer.armed_seq:
            try:
                engine.fire(app_id, timer.event, Actor.system("timer"), {}, expected_version=app.version, now=now)
                outcome, fired = "fired", fired + 1
            except ConflictError:
                outcome = "obsolete"  # the student moved on (e.g. paid) in the meantime
            except ServiceError as exc:
                outcome = f"refused: {exc}"[:32]
                log.warning("timer %d on application %s refused: %s", timer_id, app.uid, exc)
        # fire() marks the application's open timers cancelled; record what really happened.
        row = session.get(Timer, timer_id)
        if row is not None:
            row.fired_at, row.outcome = now, outcome
        session.commit()
    return fired


Renderer = Callable[[str, Account], str]


def drain_outbox(
    session: Session, vault: Vault, sms: SmsSender, render: Renderer, now: datetime, limit: int = 200
) -> int:
    """Send pending SMS side effects; each is marked sent in its own commit (at-least-once)."""
    pending = session.scalars(
        select(Outbox)
        .where(Outbox.sent_at.is_(None), Outbox.kind == "sms", Outbox.attempts < MAX_ATTEMPTS)
        .order_by(Outbox.id)
        .limit(limit)
    ).all()
    sent = 0
    for item in pending:
        if not _claim_sms(session, item, now):
            continue  # another consumer is sending it
        app = session.get(Application, item.application_id) if item.application_id else None
        account = session.get(Account, app.account_id) if app is not None else None
        try:
            if account is None or account.mobile_enc is None:
                raise LookupError("no mobile number on the account")
            sms.send(vault.decrypt(account.mobile_enc), render(item.payload["template"], account))
            item.sent_at = item.done_at = now
            sent += 1
        except Exception as exc:  # noqa: BLE001 - any sender failure is retried later
            item.last_error, item.lease_until = f"{type(exc).__name__}: {exc}", None  # the next tick retries
            log.warning("outbox %d: SMS failed (attempt %d): %s", item.id, item.attempts, exc)
        session.commit()
    return sent


def _claim_sms(session: Session, item: Outbox, now: datetime) -> bool:
    """Count the attempt and take a lease with a compare-and-set: of two consumers that read
    the same item only one sends it; a consumer killed while sending leaves it to the tick
    after the lease."""
    seen = item.attempts
    taken = session.execute(
        update(Outbox)
        .where(
            Outbox.id == item.id,
            Outbox.attempts == seen,
            Outbox.sent_at.is_(None),
            or_(Outbox.lease_until.is_(None), Outbox.lease_until <= now),
        )
        .values(attempts=seen + 1, lease_until=now + SMS_LEASE)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    session.refresh(item)
    return bool(taken)


# --- jobs (issue 4): background work named by outbox items of kind "job" ---

Enqueue = Callable[[str, int], None]  # (job name, outbox id)


def _job_items(session: Session, *, application_id: int | None = None) -> list[Outbox]:
    query = select(Outbox).where(Outbox.kind == "job").order_by(Outbox.id)
    if application_id is not None:
        query = query.where(Outbox.application_id == application_id)
    return list(session.scalars(query))


def dispatch_jobs(session: Session, enqueue: Enqueue, now: datetime, *, application_id: int | None = None) -> int:
    """Hand every job item that was never queued to the task queue; ``sent_at`` is when.

    The web request calls this right after its transition commits (so the answer comes in
    seconds); the tick calls it too, for an item whose request died before queueing it.
    """
    dispatched = 0
    for item in _job_items(session, application_id=application_id):
        if item.sent_at is not None:
            continue
        name = str(item.payload.get("name", ""))
        if _enqueue(session, item, enqueue, now):
            dispatched += 1
        else:
            log.warning("job %d (%s) could not be queued: %s", item.id, name, item.last_error)
    return dispatched


def _enqueue(session: Session, item: Outbox, enqueue: Enqueue, now: datetime) -> bool:
    """Mark the item queued, then queue it: a fast worker that starts it at once finds the
    mark already there (so its start is later than its queueing)."""
    previous = item.sent_at
    item.sent_at, item.attempts = now, item.attempts + 1
    session.commit()
    try:
        enqueue(str(item.payload.get("name", "")), item.id)
    except Exception as exc:  # noqa: BLE001 - the queue is down: the tick tries again
        item.sent_at, item.attempts = previous, item.attempts - 1
        item.last_error = f"enqueue failed: {type(exc).__name__}: {exc}"
        session.commit()
        return False
    return True


def requeue_stale_jobs(
    session: Session,
    engine: Engine,
    enqueue: Enqueue,
    now: datetime,
    *,
    lease: timedelta,
    max_dispatches: int,
    queue_wait: timedelta | None = None,
    waiting_state: str = FACE_CHECKING,
) -> tuple[int, int]:
    """Queue again the job of an application still waiting for it: one a worker started
    more than ``lease`` ago (the worker died), or one no worker started ``queue_wait``
    after it was queued (the queue lost it; a long queue is not a reason to queue it twice).
    After ``max_dispatches`` end the wait with a failure instead. Returns (queued again, failed)."""
    from gzsb.identity.service import fail_stuck_check

    queue_wait = max(queue_wait or lease, lease)
    now = now.astimezone(UTC)
    latest: dict[int, Outbox] = {}
    waiting = select(Application.id).where(Application.state == waiting_state)
    for item in session.scalars(
        select(Outbox)
        .where(Outbox.kind == "job", Outbox.sent_at.is_not(None), Outbox.application_id.in_(waiting))
        .order_by(Outbox.id)
    ):
        latest[item.application_id or 0] = item
    requeued = failed = 0
    for app_id, item in latest.items():
        sent_at = item.sent_at if item.sent_at.tzinfo else item.sent_at.replace(tzinfo=UTC)  # SQLite drops tz
        started = item.payload.get("started_at")
        started_at = datetime.fromisoformat(started) if started else None
        if started_at is not None and started_at >= sent_at:
            if started_at > now - lease:
                continue  # still within its time
        elif sent_at > now - queue_wait:
            continue  # not started yet: waiting in the queue
        app = session.get(Application, app_id)
        if app is None or app.seq != item.payload.get("seq"):
            continue  # the application moved on and came back: that wait has its own item
        if item.attempts >= max_dispatches:
            outcome = fail_stuck_check(engine, app, f"no answer after {item.attempts} dispatches")
            failed += outcome == "failed"
            continue
        waited = "started, no answer" if started_at is not None and started_at >= sent_at else "never started"
        if _enqueue(session, item, enqueue, now):
            item.last_error = f"queued again at {now.isoformat()} ({waited})"
            session.commit()
            requeued += 1
            log.warning("job %d of application %s queued again (%s)", item.id, app.uid, waited)
    return requeued, failed

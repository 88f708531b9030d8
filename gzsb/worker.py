"""Work the background jobs do, independent of the task queue: fire due timers, drain the outbox."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.adapters.sms import SmsSender
from gzsb.errors import ConflictError, ServiceError
from gzsb.models import Account, Application, Outbox, Timer
from gzsb.security import Vault
from gzsb.workflow.engine import Actor, Engine

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


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
        app = session.get(Application, item.application_id) if item.application_id else None
        account = session.get(Account, app.account_id) if app is not None else None
        item.attempts += 1
        try:
            if account is None or account.mobile_enc is None:
                raise LookupError("no mobile number on the account")
            sms.send(vault.decrypt(account.mobile_enc), render(item.payload["template"], account))
            item.sent_at = now
            sent += 1
        except Exception as exc:  # noqa: BLE001 - any sender failure is retried later
            item.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("outbox %d: SMS failed (attempt %d): %s", item.id, item.attempts, exc)
        session.commit()
    return sent

"""Helpers for driving applicants through the engine and looking at what it stored.

Used by the history, stateful and concurrency tests; the fixtures stay in conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select, text

from gzsb.extensions import db
from gzsb.models import Application, HistoryEvent, Outbox, Timer
from gzsb.store import FLOWS
from gzsb.workflow.engine import Actor, Engine
from gzsb.workflow.history import EventRow, canonical, event_hash, genesis_hash
from gzsb.workflow.registry import STEPS
from gzsb.workflow.spec import FlowSpec
from tests.support import SYSTEM, Applicant, order_of, pay, student_payload, to_payment

ROLES = ("student", "staff", "system", "admin")
STAFF = Actor("account:900", "staff")
ADMIN = Actor("account:901", "admin")


def actor_for(applicant: Applicant, role: str) -> Actor:
    return {"student": applicant.actor, "staff": STAFF, "system": SYSTEM, "admin": ADMIN}[role]


def to_approved(eng: Engine, who: Applicant) -> None:
    """Ten events: the whole route of a 普通 applicant."""
    to_payment(eng, who)
    pay(eng, who)


def application(app_id: int) -> Application:
    record = db.session.get(Application, app_id)
    assert record is not None
    return record


def uid_of(app_id: int) -> str:
    return application(app_id).uid


def flow_of(app_id: int) -> FlowSpec:
    return FLOWS.by_version(db.session, application(app_id).flow_version_id)


def valid_payload(flow: FlowSpec, record: Application, event: str, applicant: Applicant) -> dict[str, Any]:
    """A payload the event's step accepts for this applicant (its example, else {})."""
    branches = flow.branches(event, record.state)
    step = branches[0].step if branches else None
    if step is None:
        return {}
    if step == "basic_info":
        return student_payload(applicant)
    if step == "record_payment":
        order = order_of(record.id)
        return {
            "order": order.get("number", "GZSB-NONE"),
            "amount_fen": order.get("amount_fen", 0),
            "trade_no": "T-STATEFUL",
            "channel": "alipay",
        }
    if step == "materials":  # the step takes only live material uploads of the application
        from tests.review_support import add_upload

        return {"files": [add_upload(record.id).uid]}
    entry = STEPS.get(step)
    return dict(entry.example()) if entry.example else {}


def snapshot(app_id: int) -> tuple[Any, ...]:
    """Everything a refused fire() must leave as it was."""
    db.session.expire_all()
    record = application(app_id)
    events = db.session.scalar(select(func.count()).where(HistoryEvent.application_id == app_id))
    outbox = db.session.scalar(select(func.count()).select_from(Outbox))
    timers = tuple(db.session.execute(select(Timer.id, Timer.fired_at, Timer.outcome).order_by(Timer.id)))
    return (
        record.state,
        record.seq,
        record.version,
        record.head,
        canonical(record.data or {}),
        record.confirmation_point_id,
        events,
        outbox,
        timers,
    )


def history(app_id: int) -> list[HistoryEvent]:
    return list(
        db.session.scalars(select(HistoryEvent).where(HistoryEvent.application_id == app_id).order_by(HistoryEvent.seq))
    )


def sql(statement: str, **params: Any) -> None:
    """Tamper behind the application's back, the way someone with database access would."""
    db.session.execute(text(statement), params)
    db.session.commit()
    db.session.expire_all()


def chain(
    uid: str, flow: FlowSpec, moves: Iterable[tuple[str, str, str, str, Any, Mapping[str, Any]]], *, start: int = 1
) -> list[EventRow]:
    """Synthetic, correctly hashed rows: (event, from, to, role, guards, payload) each.

    ``guards`` is the recorded guard evaluation; None records the branches before the one
    taken as refused by their guards and the one taken as passing, as the engine would.
    """
    rows: list[EventRow] = []
    prev = genesis_hash(uid, flow.sha256)
    for seq, (event, source, dest, role, guards, payload) in enumerate(moves, start=start):
        if guards is None:
            guards = []
            for branch in flow.branches(event, source):
                taken = branch.dest == dest
                guards.append([branch.dest, [[g.describe(), taken] for g in branch.guards]])
                if taken:
                    break
        guards_text, payload_text = canonical(guards), canonical(dict(payload))
        at = f"2026-12-01T02:{seq // 60:02d}:{seq % 60:02d}.000000Z"
        actor = f"{role}:1"
        digest = event_hash(
            prev, uid, seq, event, source, dest, actor, role, guards_text, payload_text, flow.sha256, at, "{}"
        )
        rows.append(
            EventRow(
                seq, event, source, dest, actor, role, guards_text, payload_text, flow.sha256, at, prev, digest, "{}"
            )
        )
        prev = digest
    return rows

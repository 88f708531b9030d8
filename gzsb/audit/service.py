"""Auditing stored histories: stream every application's events and replay them."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.models import Application, HistoryEvent
from gzsb.store import FLOWS, history_rows
from gzsb.workflow.history import EventRow, Verdict, replay_application
from gzsb.workflow.spec import FlowSpec

# Rows fetched per round trip while streaming; memory stays flat however many applications.
BATCH = 5000

_EVENT_COLUMNS = (
    HistoryEvent.application_id, HistoryEvent.seq, HistoryEvent.event, HistoryEvent.from_state,
    HistoryEvent.to_state, HistoryEvent.actor, HistoryEvent.role, HistoryEvent.guards, HistoryEvent.payload,
    HistoryEvent.flow_sha256, HistoryEvent.at, HistoryEvent.prev_hash, HistoryEvent.hash,
)  # fmt: skip


def verify_all(session: Session, application_uid: str | None = None) -> Iterator[Verdict]:
    """Replay each application (or one) under its own flow version; one Verdict each.

    Two ordered streams, applications and events, are merged by application id, so
    neither is ever held whole in memory.
    """
    apps_query = select(
        Application.id, Application.uid, Application.state, Application.head, Application.flow_version_id
    ).order_by(Application.id)
    events_query = select(*_EVENT_COLUMNS).order_by(HistoryEvent.application_id, HistoryEvent.seq)
    if application_uid is not None:
        apps_query = apps_query.where(Application.uid == application_uid)
        events_query = events_query.join(Application, Application.id == HistoryEvent.application_id).where(
            Application.uid == application_uid
        )
    # Separate connections: a server-side cursor each (SQLite and PostgreSQL alike).
    bind = session.get_bind()
    with bind.connect() as apps_conn, bind.connect() as events_conn:
        apps = apps_conn.execution_options(yield_per=BATCH).execute(apps_query)
        events = events_conn.execution_options(yield_per=BATCH).execute(events_query)
        grouped = itertools.groupby(events, key=lambda r: r[0])
        pending = next(grouped, None)
        flows: dict[int, FlowSpec] = {}
        by_sha = functools.partial(FLOWS.by_sha, session)  # migrated histories name earlier versions
        for app_id, uid, state, head, version_id in apps:
            flow = flows.get(version_id) or flows.setdefault(version_id, FLOWS.by_version(session, version_id))
            # Events of applications that no longer exist would be skipped here; ids only grow.
            while pending is not None and pending[0] < app_id:
                pending = next(grouped, None)
            if pending is not None and pending[0] == app_id:
                rows: Iterator[EventRow] = (EventRow(*r[1:]) for r in pending[1])
                verdict = replay_application(uid, flow, rows, flows=by_sha, head=head, state=state)
                pending = next(grouped, None)
            else:
                verdict = replay_application(uid, flow, iter(()), flows=by_sha, head=head, state=state)
            yield verdict


def application_history(session: Session, uid: str) -> tuple[Application, list[EventRow]]:
    app = session.scalars(select(Application).where(Application.uid == uid)).first()
    if app is None:
        from gzsb.errors import NotFound

        raise NotFound(f"application {uid} does not exist")
    return app, list(history_rows(session, app.id))

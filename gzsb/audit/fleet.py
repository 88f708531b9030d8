"""Streaming every application's history through the replay, in this process or in a pool
of forked processes over application-id ranges (``flask audit verify --jobs``).

Each application is replayed with ``fleet_replay`` and each of its logged events gives its
leaf hash (tree index, leaf); ``FleetCheck`` (gzsb.audit.service) keeps the leaves and
checks the log once every application was seen. Memory stays flat per process: rows are
fetched in batches and one application's history is held at a time.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import multiprocessing
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gzsb.models import Application, HistoryEvent
from gzsb.store import FLOWS
from gzsb.workflow.history import Redactor, Verdict, event_leaf
from gzsb.workflow.history_replay import fleet_replay
from gzsb.workflow.spec import FlowSpec
from gzsb.workflow.translog import leaf_hash

log = logging.getLogger(__name__)

# Rows fetched per round trip while streaming; memory stays flat however many applications.
BATCH = 5000
# Application ids per task of the pool: big enough to amortise a task's queries.
RANGE_IDS = 2000

EVENT_COLUMNS = (
    HistoryEvent.application_id, HistoryEvent.seq, HistoryEvent.event, HistoryEvent.from_state,
    HistoryEvent.to_state, HistoryEvent.actor, HistoryEvent.role, HistoryEvent.guards, HistoryEvent.payload,
    HistoryEvent.flow_sha256, HistoryEvent.at, HistoryEvent.prev_hash, HistoryEvent.hash, HistoryEvent.changes,
    HistoryEvent.log_index,
)  # fmt: skip


def event_leaf_hash(uid: str, seq: int, digest: str) -> bytes:
    # The fast path of event_leaf for hex uids and hashes (what the database holds): the
    # same bytes as canonical([uid, seq, digest]) without a JSON encoder call per event.
    if uid.isalnum() and uid.isascii() and digest.isalnum() and digest.isascii():
        return leaf_hash(f'gzsb-log/1 event\n["{uid}",{seq},"{digest}"]\n'.encode("ascii"))
    return leaf_hash(event_leaf(uid, seq, digest))


def event_leaves(uid: str, raw: list[Any]) -> Iterator[tuple[int | None, int, bytes]]:
    """(tree index or None when not yet logged, seq, leaf hash) of each streamed event row."""
    sha256 = hashlib.sha256
    # event_leaf_hash with the application's part of the leaf encoded once.
    plain = uid.isalnum() and uid.isascii()
    lead = f'\x00gzsb-log/1 event\n["{uid}",'.encode("ascii") if plain else b""
    for r in raw:
        index, seq, digest = r[14], r[1], r[12]
        if index is None:
            yield None, seq, b""
        elif plain and type(seq) is int and digest.isalnum() and digest.isascii():
            yield index, seq, sha256(lead + f'{seq},"{digest}"]\n'.encode("ascii")).digest()
        else:
            yield index, seq, event_leaf_hash(uid, seq, digest)


def replay_stream(
    session: Session,
    redactor: Redactor | None,
    *,
    uid: str | None = None,
    ids: tuple[int, int] | None = None,
) -> Iterator[tuple[Verdict, str, list[Any]]]:
    """(verdict, uid, event rows) per application in id order: all, one ``uid``, or ids in [lo, hi)."""
    apps_query = select(
        Application.id, Application.uid, Application.state, Application.head, Application.flow_version_id,
        Application.data,
    ).order_by(Application.id)  # fmt: skip
    events_query = select(*EVENT_COLUMNS).order_by(HistoryEvent.application_id, HistoryEvent.seq)
    if uid is not None:
        apps_query = apps_query.where(Application.uid == uid)
        events_query = events_query.join(Application, Application.id == HistoryEvent.application_id).where(
            Application.uid == uid
        )
    if ids is not None:
        apps_query = apps_query.where(Application.id >= ids[0], Application.id < ids[1])
        events_query = events_query.where(HistoryEvent.application_id >= ids[0], HistoryEvent.application_id < ids[1])
    bind = session.get_bind()
    # Separate connections: a server-side cursor each (SQLite and PostgreSQL alike).
    with bind.connect() as apps_conn, bind.connect() as events_conn:
        apps = apps_conn.execution_options(yield_per=BATCH).execute(apps_query)
        events = events_conn.execution_options(yield_per=BATCH).execute(events_query)
        grouped = itertools.groupby(events, key=lambda r: r[0])
        pending = next(grouped, None)
        flows: dict[int, FlowSpec] = {}
        by_sha = functools.partial(FLOWS.by_sha, session)  # migrated histories name earlier versions
        for app_id, app_uid, state, head, version_id, data in apps:
            flow = flows.get(version_id) or flows.setdefault(version_id, FLOWS.by_version(session, version_id))
            # Events of applications that no longer exist have no row here: their leaves stay
            # unfilled and are named by tree index at the end.
            while pending is not None and pending[0] < app_id:
                pending = next(grouped, None)
            raw: list[Any] = []
            if pending is not None and pending[0] == app_id:
                raw = list(pending[1])
                pending = next(grouped, None)
            verdict = fleet_replay(
                app_uid, flow, raw, flows=by_sha, head=head, state=state, data=data, redactor=redactor
            )
            yield verdict, app_uid, raw


# ------------------------------------------------------------------ the pool


@dataclass
class RangeResult:
    """What one task of the pool sends back: verdicts, and the leaves of its logged events."""

    verdicts: list[Verdict] = field(default_factory=list)
    indexes: array = field(default_factory=lambda: array("q"))
    seqs: array = field(default_factory=lambda: array("q"))
    owners: array = field(default_factory=lambda: array("q"))  # per leaf: its application's place in verdicts
    leaves: bytearray = field(default_factory=bytearray)
    unlogged: int = 0


# What the forked children inherit (set by the parent right before it forks).
_CHILD: dict[str, Any] = {}


def _child_init() -> None:
    # The parent's pooled connections are not ours to use: new ones, same engine options.
    engine: Engine = _CHILD["engine"]
    engine.dispose(close=False)


def _verify_range(ids: tuple[int, int]) -> RangeResult:
    out = RangeResult()
    with Session(_CHILD["engine"]) as session:
        for verdict, uid, raw in replay_stream(session, _CHILD["redactor"], ids=ids):
            out.verdicts.append(verdict)
            for index, seq, leaf in event_leaves(uid, raw):
                if index is None:
                    out.unlogged += 1
                    continue
                out.indexes.append(index)
                out.seqs.append(seq)
                out.owners.append(len(out.verdicts) - 1)
                out.leaves += leaf
    return out


def can_fork(engine: Engine) -> bool:
    """A pool needs fork (children inherit the app's set-up) and a database other processes can open."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    database = engine.url.database or ""
    return not (engine.dialect.name == "sqlite" and (database in ("", ":memory:") or database.startswith("file::")))


def id_ranges(session: Session, span: int = RANGE_IDS) -> list[tuple[int, int]]:
    low = session.execute(select(Application.id).order_by(Application.id).limit(1)).scalar()
    if low is None:
        return []
    high = session.execute(select(Application.id).order_by(Application.id.desc()).limit(1)).scalar() or low
    return [(start, min(start + span, high + 1)) for start in range(low, high + 1, span)]


def pooled(session: Session, redactor: Redactor | None, jobs: int, span: int = RANGE_IDS) -> Iterator[RangeResult]:
    """Every application in ``jobs`` forked processes, ``span`` ids per task, results in id order."""
    ranges = id_ranges(session, span)
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    _CHILD.update(engine=engine, redactor=redactor)
    context = multiprocessing.get_context("fork")
    try:
        with context.Pool(jobs, initializer=_child_init) as pool:
            yield from pool.imap(_verify_range, ranges)
    finally:
        _CHILD.clear()

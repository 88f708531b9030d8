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
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import LargeBinary, Select, String, cast, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from gzsb.models import Application, HistoryEvent
from gzsb.store import FLOWS
from gzsb.workflow.history import Redactor, Verdict, event_leaf
from gzsb.workflow.history_fleet import fleet_replay
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
    """(tree index or None when not yet logged, seq, leaf hash) of each streamed event row
    (its hash as ``str`` or as the stored ASCII bytes)."""
    sha256 = hashlib.sha256
    # event_leaf_hash with the application's part of the leaf encoded once.
    plain = uid.isalnum() and uid.isascii()
    lead = f'\x00gzsb-log/1 event\n["{uid}",'.encode("ascii") if plain else b""
    for r in raw:
        index, seq, digest = r[14], r[1], r[12]
        if index is None:
            yield None, seq, b""
            continue
        if type(digest) is bytes:
            # Not ASCII: the replay has already failed it; its leaf is then the one of the text.
            digest = digest.decode("utf-8", "replace") if not (digest.isalnum() and digest.isascii()) else digest
            if plain and type(seq) is int and type(digest) is bytes:
                yield index, seq, sha256(b'%s%d,"%s"]\n' % (lead, seq, digest)).digest()
                continue
        if plain and type(seq) is int and digest.isalnum() and digest.isascii():
            yield index, seq, sha256(lead + f'{seq},"{digest}"]\n'.encode("ascii")).digest()
        else:
            yield index, seq, event_leaf_hash(uid, seq, digest)


def run_leaves(uid: str, raw: list[Any]) -> tuple[int, bytes | bytearray] | None:
    """(first tree index, the leaf hashes) when the rows were logged at consecutive tree indexes
    (events logged in application order) and each has an int seq and a bytes hex hash, as the
    SQLite stream gives them; None: take ``event_leaves`` one by one."""
    if not raw or not (uid.isalnum() and uid.isascii()):
        return None
    first = raw[0][14]
    if type(first) is not int:
        return None
    sha256 = hashlib.sha256
    lead = f'\x00gzsb-log/1 event\n["{uid}",'.encode("ascii")
    parts = []
    expect = first
    for r in raw:
        seq, digest = r[1], r[12]
        # bytes.isalnum is ASCII-only: a plain hex hash needs no JSON escaping.
        if r[14] != expect or type(seq) is not int or type(digest) is not bytes or not digest.isalnum():
            return None
        parts.append(sha256(b'%s%d,"%s"]\n' % (lead, seq, digest)).digest())
        expect += 1
    return first, b"".join(parts)


def _stream(bind: Engine, query: Select[Any], *, blobs: bool) -> Generator[Sequence[Any], None, None]:
    """The rows of ``query`` in batches of BATCH. On SQLite through the raw sqlite3 cursor: no
    row objects, and no type processing (a JSON column arrives as its stored text); with
    ``blobs`` the text columns are cast to BLOB so they arrive as the stored UTF-8 bytes, not
    decoded (the replay hashes the bytes). The connection itself is left as it was."""
    if bind.dialect.name != "sqlite":
        with bind.connect() as conn:
            yield from conn.execution_options(yield_per=BATCH).execute(query)
        return
    if blobs:
        query = query.with_only_columns(
            *(cast(c, LargeBinary) if isinstance(c.type, String) else c for c in query.selected_columns)
        )
    compiled = query.compile(dialect=bind.dialect)
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    raw = bind.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        cursor = driver.execute(str(compiled), params)
        while batch := cursor.fetchmany(BATCH):
            yield from batch
        cursor.close()
    finally:
        raw.close()  # back to the pool


def replay_stream(
    session: Session,
    redactor: Redactor | None,
    *,
    uid: str | None = None,
    ids: tuple[int, int] | None = None,
) -> Iterator[tuple[Verdict, str, list[Any], tuple[int, bytes | bytearray] | None]]:
    """(verdict, uid, event rows, leaves) per application in id order: all, one ``uid``, or ids in
    [lo, hi). ``leaves`` is (first tree index, leaf hashes) when the events were logged at
    consecutive tree indexes (see ``run_leaves``), else None: take ``event_leaves``."""
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
    assert isinstance(bind, Engine)
    # Two streams, each on its own connection (a server-side cursor each on PostgreSQL). On
    # SQLite the data column arrives as its JSON text, decoded by the replay.
    apps = _stream(bind, apps_query, blobs=False)
    events = _stream(bind, events_query, blobs=True)  # type: ignore[arg-type]
    grouped = itertools.groupby(events, key=itemgetter(0))
    try:
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
            leaves = bytearray()
            verdict = fleet_replay(
                app_uid, flow, raw, flows=by_sha, head=head, state=state, data=data, redactor=redactor, leaves=leaves
            )
            yield verdict, app_uid, raw, (raw[0][14], leaves) if leaves else run_leaves(app_uid, raw)
    finally:
        # Close both cursors (and give their connections back) even when the caller stops early.
        apps.close()
        events.close()


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
        for verdict, uid, raw, run in replay_stream(session, _CHILD["redactor"], ids=ids):
            out.verdicts.append(verdict)
            if run is not None:
                out.indexes.extend(range(run[0], run[0] + len(raw)))
                out.seqs.extend(r[1] for r in raw)
                out.owners.extend(itertools.repeat(len(out.verdicts) - 1, len(raw)))
                out.leaves += run[1]
                continue
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

"""The engine's Store, on SQLAlchemy: row locks, version checks, history, outbox, timers."""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, defer
from sqlalchemy.orm.exc import StaleDataError

from gzsb.common.lazytx import begin_now
from gzsb.common.writebatch import LockedApplication, WriteBatch, lock_row
from gzsb.errors import ConflictError, NotFound, StaleApplication
from gzsb.models import (
    Application,
    FlowLive,
    FlowPublication,
    FlowVersion,
    HistoryEvent,
    Outbox,
    Timer,
    new_uid,
)
from gzsb.workflow.history import EventRow, genesis_hash
from gzsb.workflow.loader import flow_sha256, load_flow
from gzsb.workflow.spec import FlowSpec

log = logging.getLogger(__name__)


# Engine → its URL as text: rendering a URL costs more than the rest of a catalogue lookup.
_DATABASES: weakref.WeakKeyDictionary[SqlEngine, str] = weakref.WeakKeyDictionary()
_DATABASE = "gzsb.database"  # Session.info: the same, for this session


def database_of(session: Session) -> str:
    """Which database ``session`` talks to, as its URL (password hidden)."""
    url: str | None = session.info.get(_DATABASE)
    if url is None:  # once per session: Flask-SQLAlchemy's get_bind() looks at bind keys
        engine = session.get_bind().engine
        url = _DATABASES.get(engine)
        if url is None:
            url = _DATABASES[engine] = str(engine.url)
        session.info[_DATABASE] = url
    return url


class FlowCatalog:
    """Published flow versions, parsed once per process (they are immutable)."""

    def __init__(self) -> None:
        self._by_id: dict[tuple[str, int], FlowSpec] = {}
        self._by_sha: dict[tuple[str, str], FlowSpec] = {}
        self._lock = threading.Lock()

    def by_version(self, session: Session, version_id: int) -> FlowSpec:
        # Keyed by database too: one process may talk to several (tests, tools).
        key = (database_of(session), version_id)
        flow = self._by_id.get(key)
        if flow is None:
            row = session.get(FlowVersion, version_id)
            if row is None:
                raise NotFound(f"flow version {version_id} does not exist")
            flow = load_flow(row.yaml_text, f"{row.flow}@{row.sha256[:12]}")
            with self._lock:
                self._by_id[key] = flow
        return flow

    def by_sha(self, session: Session, sha256: str) -> FlowSpec:
        """The published version with this SHA-256 (a migrated history names its flows so)."""
        key = (database_of(session), sha256)
        flow = self._by_sha.get(key)
        if flow is None:
            flow = self.by_version(session, version_id_of(session, sha256))
            with self._lock:
                self._by_sha[key] = flow
        return flow

    def current(self, session: Session, name: str) -> FlowVersion:
        """The live version of ``name``: the one new applications start on."""
        row = live_version(session, name)
        if row is None:
            raise NotFound(f"no version of flow {name!r} is published; run `flask flow publish`")
        return row


FLOWS = FlowCatalog()


def version_id_of(session: Session, sha256: str) -> int:
    version_id = session.scalar(select(FlowVersion.id).where(FlowVersion.sha256 == sha256))
    if version_id is None:
        raise NotFound(f"no published flow version has SHA-256 {sha256[:12]}")
    return version_id


def live_version(session: Session, name: str) -> FlowVersion | None:
    """The version ``flow_live`` points at (None: nothing of ``name`` is published)."""
    # The YAML text is loaded only if asked for: most callers want the id (the parsed flow
    # comes from FLOWS), and pages asked for it on every request just to learn the version.
    lazy_text = defer(FlowVersion.yaml_text)
    row = session.scalars(
        select(FlowVersion)
        .options(lazy_text)
        .join(FlowLive, FlowLive.version_id == FlowVersion.id)
        .where(FlowLive.flow == name)
    ).first()
    if row is None:  # a database whose versions were stored before the live pointer existed
        row = session.scalars(
            select(FlowVersion)
            .options(lazy_text)
            .where(FlowVersion.flow == name)
            .order_by(FlowVersion.id.desc())
            .limit(1)
        ).first()
    return row


# What a publish did: a new version, an earlier one made live again, or nothing.
PUBLISHED, LIVE_AGAIN, ALREADY_LIVE = "published", "live_again", "already_live"


@dataclass(frozen=True)
class Publication:
    version: FlowVersion
    outcome: str  # PUBLISHED, LIVE_AGAIN or ALREADY_LIVE
    previous_id: int | None  # the version that was live before (None: the first of its flow)

    @property
    def created(self) -> bool:
        return self.outcome == PUBLISHED

    def describe(self) -> str:
        """One line for the CLI (English)."""
        row = self.version
        return {
            PUBLISHED: f"{row.flow}: published as version {row.id} (sha256 {row.sha256}); it is live",
            LIVE_AGAIN: f"{row.flow}: version {row.id} is live again (was version {self.previous_id})",
            ALREADY_LIVE: f"{row.flow}: already live as version {row.id} (sha256 {row.sha256})",
        }[self.outcome]


def publish_version(
    session: Session,
    flow: FlowSpec,
    by: str = "",
    *,
    approved_by: str = "",
    proposal_id: int | None = None,
    now: datetime | None = None,
    commit: bool = True,
) -> Publication:
    """THE publish: store ``flow`` as an immutable version (or find it) and make it live.

    Every change of the live version adds a ``flow_publications`` row in the same
    transaction; publishing the live version again changes and records nothing. The
    caller has validated ``flow`` with the product's registries. ``commit=False`` leaves
    the transaction to the caller (an approval publishes and records in one)."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    sha = flow_sha256(flow.text)
    query = select(FlowLive).where(FlowLive.flow == flow.flow)
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()  # two publishes at once: one waits, both are recorded in order
    live = session.scalars(query).first()
    before = live_version(session, flow.flow)  # also right for a database without a pointer yet
    previous = before.id if before is not None else None
    row = session.scalars(select(FlowVersion).where(FlowVersion.sha256 == sha)).first()
    created = row is None
    if row is None:
        row = FlowVersion(flow=flow.flow, sha256=sha, yaml_text=flow.text, published_by=by, published_at=at)
        session.add(row)
        session.flush()
    if live is None:
        session.add(FlowLive(flow=row.flow, version_id=row.id, since=at))
    if previous == row.id:
        if commit:
            session.commit()
        return Publication(row, ALREADY_LIVE, previous)
    if live is not None:
        live.version_id, live.since = row.id, at
    session.add(
        FlowPublication(
            flow=row.flow,
            version_id=row.id,
            by=by,
            approved_by=approved_by,
            proposal_id=proposal_id,
            previous_version_id=previous,
            at=at,
        )
    )
    session.flush()
    if commit:
        session.commit()
    outcome = PUBLISHED if created else LIVE_AGAIN
    log.info("flow %s: version %s %s by %s (approved by %s)", row.flow, row.id, outcome, by, approved_by or "-")
    return Publication(row, outcome, previous)


def publish(session: Session, flow: FlowSpec, by: str = "") -> tuple[FlowVersion, bool]:
    """``publish_version`` for callers that only need (version, newly stored)."""
    found = publish_version(session, flow, by)
    return found.version, found.created


def start_application(session: Session, account_id: int, flow_name: str, **columns: Any) -> Application:
    """A new application on the currently published version of ``flow_name``."""
    version = FLOWS.current(session, flow_name)
    flow = FLOWS.by_version(session, version.id)
    app = Application(
        uid=new_uid(), account_id=account_id, flow_version_id=version.id, state=flow.initial, data={}, **columns
    )
    app.head = genesis_hash(app.uid, flow.sha256)
    session.add(app)
    session.commit()
    return app


def history_rows(session: Session, application_id: int) -> Iterator[EventRow]:
    rows = session.execute(
        select(
            HistoryEvent.seq,
            HistoryEvent.event,
            HistoryEvent.from_state,
            HistoryEvent.to_state,
            HistoryEvent.actor,
            HistoryEvent.role,
            HistoryEvent.guards,
            HistoryEvent.payload,
            HistoryEvent.flow_sha256,
            HistoryEvent.at,
            HistoryEvent.prev_hash,
            HistoryEvent.hash,
            HistoryEvent.changes,
        )  # fmt: skip
        .where(HistoryEvent.application_id == application_id)
        .order_by(HistoryEvent.seq)
    )
    for r in rows:
        yield EventRow(*r)


_EVENT_FIELDS = tuple(f.name for f in fields(EventRow))

_WROTE = "gzsb.store.wrote"  # session.info: this transaction flushed or executed a write


def _wrote(session: Session) -> bool:
    return bool(session.new or session.dirty or session.deleted or session.info.get(_WROTE))


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if not state.is_select:  # UPDATE/INSERT/DELETE or text(): count it as a write
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost one: what it wrote is committed or gone
        session.info.pop(_WROTE, None)


# The row lock's statements off PostgreSQL, built once (building them was a tenth of a lock's CPU).
_LOAD = (
    select(Application).where(Application.id == bindparam("application_id")).execution_options(populate_existing=True)
)
_LOCK = _LOAD.with_for_update()
# The record a transition works on: a Core-loaded row on PostgreSQL, the ORM object elsewhere.
_Row = Application | LockedApplication


class SqlStore:
    """The Store on a SQLAlchemy session. On PostgreSQL the row is locked by Core
    (``lock_row``) and a transition's writes go out as ONE statement at ``save()``
    (``WriteBatch``: a round trip per write was most of a fire() there); SQLite has no
    data-modifying CTEs (nor row locks), so there the ORM loads and writes the row."""

    def __init__(self, session: Session, flows: FlowCatalog = FLOWS) -> None:
        self.session = session
        self.flows = flows
        self._batch: WriteBatch | None = None

    def _batched(self) -> WriteBatch | None:
        if self._batch is None and self.session.get_bind().dialect.name == "postgresql":
            self._batch = WriteBatch()
        return self._batch

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # What the caller wrote belongs to its transaction, not ours. After mere reads, on
        # PostgreSQL (read committed; the row lock reads the latest row) the transition goes
        # on in that transaction: no COMMIT, pool checkout and BEGIN.
        postgresql = self.session.get_bind().dialect.name == "postgresql"
        if not postgresql or _wrote(self.session):
            self.session.commit()
        if postgresql:  # a GET reading in autocommit (gzsb.common.lazytx): the lock must hold
            begin_now(self.session)
        self._batch = None
        try:
            yield
            self.session.commit()
        except StaleDataError:
            self.session.rollback()
            raise StaleApplication("the application was changed by someone else") from None
        except IntegrityError as exc:
            self.session.rollback()
            # UNIQUE(application_id, seq): another transaction appended this seq first.
            raise StaleApplication(f"concurrent transition lost: {exc.orig}") from None
        except OperationalError as exc:
            self.session.rollback()
            if "locked" in str(exc.orig).lower():
                raise ConflictError("the database was busy with another change to this application") from None
            raise
        except BaseException:
            self.session.rollback()
            raise
        finally:
            self._batch = None

    def lock(self, application_id: int) -> _Row:
        app: _Row | None
        if self._batched() is not None:
            app = lock_row(self.session, application_id)
        else:
            query = _LOCK if self.session.get_bind().dialect.name != "sqlite" else _LOAD
            app = self.session.scalars(query, {"application_id": application_id}).first()
        if app is None:
            raise NotFound(f"application {application_id} does not exist")
        return app

    def flow_of(self, record: _Row) -> FlowSpec:
        return self.flows.by_version(self.session, record.flow_version_id)

    def switch_flow(self, record: _Row, sha256: str) -> None:
        # Written by save() in the transition's UPDATE, under the same version check as every transition.
        record.flow_version_id = version_id_of(self.session, sha256)

    def save(self, record: _Row, *, state: str, data: dict[str, Any], seq: int, head: str) -> None:
        batch = self._batched()
        if batch is not None:
            if not isinstance(record, LockedApplication):
                raise TypeError("on PostgreSQL a transition saves the record lock() returned")
            self._batch = None
            batch.write(self.session, record, state=state, data=data, seq=seq, head=head)
            return
        record.state = state
        record.data = data
        record.seq = seq
        record.head = head
        record.updated_at = datetime.now(UTC)
        # The mapper's version_id_col turns this into UPDATE … WHERE version = :old;
        # a lost race raises StaleDataError (SQLite has no row locks, so this is its guard).
        self.session.flush()

    def append(self, record: _Row, row: EventRow) -> None:
        # Its fields are str and int: a shallow dict (asdict() deep-copies each value).
        values = {"application_id": record.id, **{name: getattr(row, name) for name in _EVENT_FIELDS}}
        batch = self._batched()
        if batch is not None:
            batch.history.append(values)
        else:
            self.session.add(HistoryEvent(**values))

    def outbox(self, record: _Row, kind: str, payload: dict[str, Any]) -> None:
        batch = self._batched()
        if batch is not None:
            batch.outbox.append({"application_id": record.id, "kind": kind, "payload": payload})
        else:
            self.session.add(Outbox(application_id=record.id, kind=kind, payload=payload))

    def cancel_timers(self, record: _Row, now: datetime) -> None:
        batch = self._batched()
        if batch is not None:
            batch.cancel_at = now.astimezone(UTC)
            return
        # No autoflush (pending rows go with save()), no session sync (no Timer object of this
        # transaction is read afterwards): less ORM work per transition.
        with self.session.no_autoflush:
            self.session.execute(
                update(Timer)
                .where(Timer.application_id == record.id, Timer.fired_at.is_(None))
                .values(fired_at=now.astimezone(UTC), outcome="cancelled")
                .execution_options(synchronize_session=False)
            )

    def arm_timer(self, record: _Row, state: str, event: str, armed_seq: int, due_at: datetime) -> None:
        # SQLite keeps no zone: every stored time is UTC so comparisons agree.
        due_utc = due_at.astimezone(UTC)
        values = {"application_id": record.id, "state": state, "event": event, "armed_seq": armed_seq}
        batch = self._batched()
        if batch is not None:
            batch.timers.append({**values, "due_at": due_utc, "outcome": ""})
        else:
            self.session.add(Timer(**values, due_at=due_utc))

"""The in-flight fleet of a flow: streamed for impact reports, moved by migrations.

No Flask. Rows are read in keyset pages (reports and migrations alike; a migration
commits as it goes, a report run by the worker commits its progress), so memory stays
flat however many applications there are. Used through ``gzsb.admin.flows``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from gzsb.errors import ConflictError, MigrationRefused, NotFound
from gzsb.models import Application, FlowVersion
from gzsb.store import FLOWS
from gzsb.workflow import impact as impacts
from gzsb.workflow.engine import Actor, Engine
from gzsb.workflow.history import MIGRATE_ROLE
from gzsb.workflow.migrate import migration_target
from gzsb.workflow.registry import GUARDS
from gzsb.workflow.spec import FlowSpec

log = logging.getLogger(__name__)

BATCH = 2_000
PROGRESS_EVERY = 10_000
Progress = Callable[[int], None]


@dataclass(frozen=True)
class InFlight:
    id: int
    uid: str
    state: str
    version_id: int
    data: Mapping[str, Any]


def in_flight_clause(session: Session, flow_name: str, version_id: int | None = None) -> ColumnElement[bool]:
    """Applications of ``flow_name`` (or of one version) not in a final state of their own version."""
    query = select(FlowVersion.id).where(FlowVersion.flow == flow_name)
    if version_id is not None:
        query = query.where(FlowVersion.id == version_id)
    parts = []
    for vid in session.scalars(query):
        finals = sorted(name for name, spec in FLOWS.by_version(session, vid).states.items() if spec.final)
        parts.append(and_(Application.flow_version_id == vid, Application.state.not_in(finals)))
    return or_(*parts) if parts else false()


def stream_in_flight(
    session: Session,
    flow_name: str,
    *,
    version_id: int | None = None,
    only_state: str | None = None,
    batch: int = BATCH,
) -> Iterator[InFlight]:
    """Every in-flight application (id order), read in keyset pages of ``batch`` rows: no
    cursor stays open between pages, so a caller may commit (e.g. progress) as it goes."""
    where = in_flight_clause(session, flow_name, version_id)
    if only_state:
        where = and_(where, Application.state == only_state)
    columns = (Application.id, Application.uid, Application.state, Application.flow_version_id, Application.data)
    last = 0
    while True:
        page = session.execute(
            select(*columns).where(where, Application.id > last).order_by(Application.id).limit(batch)
        ).all()
        if not page:
            return
        last = page[-1][0]
        for row in page:
            yield InFlight(row[0], row[1], row[2], row[3], row[4] or {})


def count_in_flight(session: Session, flow_name: str) -> int:
    """How many applications an impact report or a migration of ``flow_name`` would walk."""
    return session.scalar(select(func.count(Application.id)).where(in_flight_clause(session, flow_name))) or 0


def impact_report(
    session: Session,
    candidate: FlowSpec,
    *,
    now: datetime,
    flow_name: str,
    against: int | None = None,
    limit: int | None = 50,
    progress: Progress | None = None,
    every: int = PROGRESS_EVERY,
) -> impacts.ImpactReport:
    """Classify every in-flight application (each against its own version, or only those on
    ``against``) as if ``candidate`` were its flow at ``now``; keeps ``limit`` per class."""
    if against is not None and session.get(FlowVersion, against) is None:
        raise NotFound(f"flow version {against} does not exist")
    classifiers: dict[int, impacts.Classifier] = {}

    def classified() -> Iterator[impacts.Impact]:
        for app in stream_in_flight(session, flow_name, version_id=against):
            found = classifiers.get(app.version_id)
            if found is None:
                current = FLOWS.by_version(session, app.version_id)
                found = classifiers[app.version_id] = impacts.Classifier(current, candidate, now, GUARDS)
            yield found.classify(app.uid, app.state, app.data)

    return impacts.summarise(classified(), limit=limit, progress=progress, every=every)


# -- migration ---------------------------------------------------------------------------------

MOVED, WOULD_MOVE, REFUSED, FAILED = "moved", "would_move", "refused", "failed"


@dataclass(frozen=True)
class MigrationItem:
    uid: str
    state: str
    outcome: str  # MOVED, WOULD_MOVE, REFUSED or FAILED
    to_state: str = ""
    reason: str = ""
    from_version: int = 0

    def to_text(self) -> str:
        if self.outcome in (MOVED, WOULD_MOVE):
            return f"{self.outcome} {self.uid}: {self.state} -> {self.to_state} (from version {self.from_version})"
        return f"{self.outcome.upper()} {self.uid} in {self.state!r}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "state": self.state,
            "outcome": self.outcome,
            "to_state": self.to_state,
            "reason": self.reason,
            "from_version": self.from_version,
        }


@dataclass
class MigrationReport:
    target_version: int
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((MOVED, WOULD_MOVE, REFUSED, FAILED), 0))
    items: list[MigrationItem] = field(default_factory=list)  # every refusal/failure, ``limit`` of the rest
    by_state: dict[tuple[str, str], int] = field(default_factory=dict)  # (outcome, state) -> n

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return not self.counts[REFUSED] and not self.counts[FAILED]

    def to_text(self) -> str:
        verb = "dry run: " if self.dry_run else ""
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items() if v or k in (REFUSED, FAILED))
        return f"{verb}{self.total} application(s) considered for version {self.target_version}: {counts}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_version": self.target_version,
            "dry_run": self.dry_run,
            "total": self.total,
            "counts": dict(self.counts),
            "by_state": [{"outcome": o, "state": s, "count": n} for (o, s), n in sorted(self.by_state.items())],
            "items": [i.to_dict() for i in self.items],
        }


def migrate_fleet(
    session: Session,
    engine: Engine,
    target_version: int,
    *,
    actor: str,
    approved_by: str | None,
    mapping: Mapping[str, str] | None = None,
    only_state: str | None = None,
    dry_run: bool = False,
    reason: str = "",
    now: datetime,
    limit: int | None = 200,
    on_item: Callable[[MigrationItem], None] | None = None,
    progress: Progress | None = None,
    every: int = PROGRESS_EVERY,
    batch: int = 500,
) -> MigrationReport:
    """Move every in-flight application of the target's flow that runs on another version
    to ``target_version``: one ``Engine.migrate`` transaction each, so one refusal or
    failure leaves that application as it was and the batch goes on."""
    row = session.get(FlowVersion, target_version)
    if row is None:
        raise NotFound(f"flow version {target_version} does not exist")
    target = FLOWS.by_version(session, row.id)
    mapping = dict(mapping or {})
    unknown = sorted(f"{old}={new}" for old, new in mapping.items() if new not in target.states)
    if unknown:  # a typo in the mapping refuses the whole batch before anything moves
        raise MigrationRefused(
            f"the mapping names states version {row.id} does not have ({', '.join(unknown)}); "
            f"valid target states: {', '.join(sorted(target.states))}"
        )
    who = Actor(actor, MIGRATE_ROLE)
    report = MigrationReport(row.id, dry_run)
    where = and_(in_flight_clause(session, row.flow), Application.flow_version_id != row.id)
    if only_state:
        where = and_(where, Application.state == only_state)
    last = 0
    while True:
        page = session.execute(
            select(Application.id, Application.uid, Application.state, Application.flow_version_id)
            .where(where, Application.id > last)
            .order_by(Application.id)
            .limit(batch)
        ).all()
        if not page:
            break
        last = page[-1][0]
        for app_id, uid, state, version_id in page:
            item = _one(session, engine, target, app_id, uid, state, version_id, mapping, who, approved_by, reason,
                        now, dry_run)  # fmt: skip
            report.counts[item.outcome] += 1
            key = (item.outcome, item.state)
            report.by_state[key] = report.by_state.get(key, 0) + 1
            if item.outcome in (REFUSED, FAILED) or limit is None or len(report.items) < limit:
                report.items.append(item)
            if on_item is not None:
                on_item(item)
            if progress is not None and report.total % every == 0:
                progress(report.total)
    log.info("migration to version %s by %s: %s", row.id, actor, report.to_text())
    return report


def _one(
    session: Session,
    engine: Engine,
    target: FlowSpec,
    app_id: int,
    uid: str,
    state: str,
    version_id: int,
    mapping: Mapping[str, str],
    who: Actor,
    approved_by: str | None,
    reason: str,
    now: datetime,
    dry_run: bool,
) -> MigrationItem:
    flow = FLOWS.by_version(session, version_id)
    try:
        dest = migration_target(uid, state, flow, target, mapping)
        if not dry_run:
            engine.migrate(app_id, target, mapping=mapping, actor=who, approved_by=approved_by, reason=reason, now=now)
    except MigrationRefused as exc:
        valid = ", ".join(sorted(target.states))
        why = str(exc) if "valid" in str(exc) or "map it" in str(exc) else f"{exc}; valid target states: {valid}"
        log.warning("migration refused: %s", why)
        return MigrationItem(uid, state, REFUSED, reason=why, from_version=version_id)
    except ConflictError as exc:  # changed by someone else meanwhile: left as it was, run again
        log.warning("application %s: migration failed: %s", uid, exc)
        return MigrationItem(uid, state, FAILED, reason=str(exc), from_version=version_id)
    return MigrationItem(uid, state, WOULD_MOVE if dry_run else MOVED, dest, from_version=version_id)

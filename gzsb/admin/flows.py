"""Admin work on flow versions (issue 11): what is live, versions, diff, impact, migration
and the two-person publish. Used by the CLI (`flask flow …`), the admin workbench and the
worker; no Flask here.

Actors are strings, as in the engine's ``Actor`` ids: ``account:<id>`` for an admin on the
web, ``cli:<name>`` for a command (``actor_of`` turns a bare ``--by`` name into one).
Callers pass the session, the time (the app clock) and, for migrations, the engine.

Publishing: a version an admin wrote goes propose → approve (a different, active admin) →
published (and migrated when asked). ``publish_direct`` is the operator's path, allowed only
for the first version of a flow (``make run``) and for re-publishing a version that was
already published (rollback); anything new must be proposed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gzsb.admin.flow_fleet import (
    InFlight,
    MigrationItem,
    MigrationReport,
    impact_report,
    in_flight_clause,
    migrate_fleet,
    stream_in_flight,
)
from gzsb.admin.service import Operator, record
from gzsb.common.beijing import as_utc
from gzsb.errors import ConfigurationError, ConflictError, Forbidden, InvalidInput, NotFound
from gzsb.models import Account, Application, FlowProposal, FlowPublication, FlowVersion
from gzsb.store import FLOWS, Publication, live_version, publish_version
from gzsb.workflow.diff import FlowDiff, diff_flows
from gzsb.workflow.engine import Engine
from gzsb.workflow.impact import ImpactReport
from gzsb.workflow.loader import flow_sha256
from gzsb.workflow.registry import FlowRegistries, global_registries
from gzsb.workflow.spec import FlowSpec
from gzsb.workflow.validate import check_flow

log = logging.getLogger(__name__)

__all__ = ["InFlight", "MigrationItem", "MigrationReport", "impact_report", "in_flight_clause", "migrate_fleet",
           "stream_in_flight"]  # fmt: skip

PROPOSED, APPROVED, REJECTED, PUBLISHED = "proposed", "approved", "rejected", "published"
MAX_YAML = 200_000  # characters: the shipped flow is ~12 kB
MAX_NOTE = 2_000


def actor_of(by: str | int) -> str:
    """``12`` → ``account:12``; ``alice`` → ``cli:alice``; ``account:12``/``cli:x`` unchanged."""
    if isinstance(by, int):
        return f"account:{by}"
    text = by.strip()
    if not text:
        raise InvalidInput("no actor", {"by": ["请指明操作人"]})
    return text if ":" in text else f"cli:{text}"


def _operator(actor: str) -> Operator:
    kind, _, rest = actor.partition(":")
    return Operator(actor, int(rest) if kind == "account" and rest.isdigit() else None)


def check_admin(session: Session, actor: str) -> None:
    """An ``account:<id>`` actor must be an active admin account (CLI names are trusted:
    whoever runs `flask` already has the server)."""
    kind, _, rest = actor.partition(":")
    if kind != "account":
        return
    account = session.get(Account, int(rest)) if rest.isdigit() else None
    if account is None or account.role != "admin" or account.disabled_at is not None:
        raise Forbidden(f"{actor} is not an active admin account", public="只有启用的管理员账号可以进行此操作")


def validate(text: str, source: str = "<flow>", registries: FlowRegistries | None = None) -> FlowSpec:
    """Load and validate with the product's registries (needs included); FlowError lists
    every problem with its line. ``registries`` only for tests of the service itself."""
    if len(text) > MAX_YAML:
        raise InvalidInput("flow too long", {"yaml": [f"流程文件不能超过{MAX_YAML}个字符"]})
    return check_flow(text, source, registries or _product_registries())


def _product_registries() -> FlowRegistries:
    # Filled by gzsb.bootstrap.registries() (create_app runs it); this service does not
    # import the wiring module, which loads the views that import this service.
    found = global_registries()
    if not found.pages.names() or not len(found.needs):
        raise ConfigurationError("the product's registries are not wired: call gzsb.bootstrap.registries() first")
    return found


def resolve(session: Session, ref: str | int, registries: FlowRegistries | None = None) -> FlowSpec:
    """A published version (its id) or a flow file (its path, validated) as a FlowSpec."""
    if isinstance(ref, int) or str(ref).isdigit():
        return FLOWS.by_version(session, int(ref))
    path = Path(str(ref))
    if not path.is_file():
        raise NotFound(f"{ref}: neither a version id nor a file")
    return validate(path.read_text(encoding="utf-8"), path.name, registries)


# -- publishing -----------------------------------------------------------------------------


def publish(
    session: Session,
    flow: FlowSpec,
    *,
    by: str,
    now: datetime,
    approved_by: str = "",
    proposal_id: int | None = None,
    commit: bool = True,
) -> Publication:
    """Make ``flow`` (validated) the live version, recorded in ``flow_publications`` and the
    admin log. The single publish entry point of the admin area (over ``store.publish_version``)."""
    done = publish_version(session, flow, by, approved_by=approved_by, proposal_id=proposal_id, now=now, commit=False)
    if done.outcome != "already_live":
        record(
            session, _operator(by), now, "publish_flow", f"flow_version:{done.version.id}",
            flow=done.version.flow, outcome=done.outcome, sha256=done.version.sha256,
            previous=done.previous_id, approved_by=approved_by, proposal=proposal_id,
        )  # fmt: skip
    if commit:
        session.commit()
    return done


def publish_direct(session: Session, flow: FlowSpec, *, by: str, now: datetime) -> Publication:
    """The operator's path without a second admin: the first version of a flow, or a version
    published before (rollback). A new edit of a running flow must be proposed."""
    sha = flow_sha256(flow.text)
    known = session.scalar(select(FlowVersion.id).where(FlowVersion.sha256 == sha))
    if known is None and live_version(session, flow.flow) is not None:
        raise Forbidden(
            f"flow {flow.flow} already has a live version: a new version needs a second admin "
            "(`flask flow propose`, then `flask flow approve` by someone else)",
            public="新版本流程须由另一位管理员审批后才能发布",
        )
    return publish(session, flow, by=by, now=now)


# -- versions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    id: int
    flow: str
    sha256: str
    published_by: str
    published_at: datetime
    approved_by: str  # of its latest publication
    last_published_by: str
    last_published_at: datetime | None
    live: bool
    applications: int
    in_flight: int
    states: Mapping[str, int]  # applications per state right now (the funnel)


def state_counts(session: Session, flow_name: str) -> dict[int, dict[str, int]]:
    """{version id: {state: applications}} in one GROUP BY."""
    rows = session.execute(
        select(Application.flow_version_id, Application.state, func.count())
        .join(FlowVersion, FlowVersion.id == Application.flow_version_id)
        .where(FlowVersion.flow == flow_name)
        .group_by(Application.flow_version_id, Application.state)
    )
    counts: dict[int, dict[str, int]] = {}
    for version_id, state, n in rows:
        counts.setdefault(version_id, {})[state] = n
    return counts


def versions(session: Session, flow_name: str) -> list[VersionRow]:
    """Every published version of ``flow_name``, newest first, with who/when, counts and live."""
    live = live_version(session, flow_name)
    counts = state_counts(session, flow_name)
    last: dict[int, FlowPublication] = {}
    for pub in session.scalars(
        select(FlowPublication).where(FlowPublication.flow == flow_name).order_by(FlowPublication.id)
    ):
        last[pub.version_id] = pub
    rows = []
    for v in session.scalars(select(FlowVersion).where(FlowVersion.flow == flow_name).order_by(FlowVersion.id.desc())):
        states = counts.get(v.id, {})
        finals = {name for name, spec in FLOWS.by_version(session, v.id).states.items() if spec.final}
        pub = last.get(v.id)
        rows.append(
            VersionRow(
                id=v.id,
                flow=v.flow,
                sha256=v.sha256,
                published_by=v.published_by,
                published_at=as_utc(v.published_at),
                approved_by=pub.approved_by if pub else "",
                last_published_by=pub.by if pub else v.published_by,
                last_published_at=as_utc(pub.at) if pub else None,
                live=live is not None and live.id == v.id,
                applications=sum(states.values()),
                in_flight=sum(n for s, n in states.items() if s not in finals),
                states=dict(states),
            )
        )
    return rows


def diff(session: Session, old: str | int, new: str | int) -> FlowDiff:
    """Structural and line diff of two versions or flow files (``resolve``)."""
    return diff_flows(resolve(session, old), resolve(session, new))


def impact(
    session: Session,
    candidate: FlowSpec,
    *,
    now: datetime,
    against: int | None = None,
    limit: int | None = 50,
    progress: Callable[[int], None] | None = None,
) -> ImpactReport:
    """What ``candidate`` would do to every in-flight application of its flow at ``now``."""
    return impact_report(session, candidate, now=now, flow_name=candidate.flow, against=against, limit=limit,
                         progress=progress)  # fmt: skip


def migrate(
    session: Session,
    engine: Engine,
    target_version: int,
    *,
    by: str,
    approved_by: str | None,
    now: datetime,
    mapping: Mapping[str, str] | None = None,
    only_state: str | None = None,
    dry_run: bool = False,
    reason: str = "",
    on_item: Callable[[MigrationItem], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> MigrationReport:
    """Move in-flight applications to ``target_version`` (see ``migrate_fleet``); a real run
    is recorded in the admin log with its summary. ``approved_by`` goes into every
    application's ``migrate_flow`` event."""
    check_admin(session, by)
    report = migrate_fleet(
        session, engine, target_version, actor=by, approved_by=approved_by, mapping=mapping,
        only_state=only_state, dry_run=dry_run, reason=reason, now=now, on_item=on_item, progress=progress,
    )  # fmt: skip
    if not dry_run:
        record(
            session, _operator(by), now, "migrate_flow", f"flow_version:{target_version}",
            counts=report.counts, mapping=dict(mapping or {}), only_state=only_state or "",
            approved_by=approved_by or "",
        )  # fmt: skip
        session.commit()
    return report


# -- two-person publish ------------------------------------------------------------------------


def parse_mapping(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["old=new", …]`` → ``{"old": "new"}``; InvalidInput on anything else."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InvalidInput(f"bad mapping {pair!r} (want old=new)", {"mapping": ["状态映射格式应为 旧状态=新状态"]})
        mapping[old.strip()] = new.strip()
    return mapping


def propose(
    session: Session,
    text: str,
    *,
    by: str,
    now: datetime,
    note: str = "",
    migrate: bool = False,
    mapping: Mapping[str, str] | None = None,
    source: str = "proposal.yaml",
    with_impact: bool = True,
) -> FlowProposal:
    """Store an edit for a second admin, with its diff against the live version and the
    impact summary at ``now`` (or none yet: a large fleet's comes from a worker job, see
    ``flow_jobs``). Refuses a flow that does not validate (FlowError)."""
    check_admin(session, by)
    flow = validate(text, source)
    if len(note) > MAX_NOTE:
        raise InvalidInput("note too long", {"note": [f"说明不能超过{MAX_NOTE}个字"]})
    mapping = dict(mapping or {})
    unknown = sorted(f"{o}={n}" for o, n in mapping.items() if n not in flow.states)
    if unknown:
        raise InvalidInput(f"mapping to unknown states: {', '.join(unknown)}", {"mapping": ["映射的目标状态不存在"]})
    base = live_version(session, flow.flow)
    changes = diff_flows(FLOWS.by_version(session, base.id), flow).to_dict() if base else {}
    report = impact(session, flow, now=now, limit=20).to_dict() if with_impact else {}
    proposal = FlowProposal(
        flow=flow.flow, yaml_text=flow.text, sha256=flow.sha256, proposed_by=by, proposed_at=as_utc(now),
        note=note, base_version_id=base.id if base else None, diff=changes, impact=report, status=PROPOSED,
        migrate=migrate, mapping=mapping,
    )  # fmt: skip
    session.add(proposal)
    session.flush()
    record(session, _operator(by), now, "propose_flow", f"flow_proposal:{proposal.id}",
           flow=flow.flow, sha256=flow.sha256, migrate=migrate, mapping=mapping)  # fmt: skip
    session.commit()
    log.info("%s proposed flow %s (%s) as proposal %d", by, flow.flow, flow.sha256[:12], proposal.id)
    return proposal


def proposal(session: Session, proposal_id: int) -> FlowProposal:
    found = session.get(FlowProposal, proposal_id)
    if found is None:
        raise NotFound(f"flow proposal {proposal_id} does not exist", public="未找到该流程提案")
    return found


def proposals(session: Session, status: str | None = None, limit: int = 100) -> list[FlowProposal]:
    query = select(FlowProposal).order_by(FlowProposal.id.desc()).limit(limit)
    if status:
        query = query.where(FlowProposal.status == status)
    return list(session.scalars(query))


def _decidable(session: Session, proposal_id: int, by: str) -> FlowProposal:
    check_admin(session, by)
    found = proposal(session, proposal_id)
    if found.status != PROPOSED:
        raise ConflictError(f"proposal {found.id} is already {found.status}", public="该提案已处理")
    if found.proposed_by == by:
        raise Forbidden(
            f"{by} proposed flow proposal {found.id} and may not decide it (self-approval)",
            public="不能审批自己提交的流程提案，须由另一位管理员审批",
        )
    return found


@dataclass(frozen=True)
class Approval:
    proposal: FlowProposal
    publication: Publication
    migration: MigrationReport | None


def approve(
    session: Session,
    engine: Engine | None,
    proposal_id: int,
    *,
    by: str,
    now: datetime,
    on_item: Callable[[MigrationItem], None] | None = None,
    progress: Callable[[int], None] | None = None,
    migrate_now: bool = True,
) -> Approval:
    """A second admin approves: validated again, published (and, if the proposal asks,
    in-flight applications migrated, approved by ``by``, here or, with ``migrate_now``
    false, by a worker job, see ``flow_jobs``); every step recorded."""
    found = _decidable(session, proposal_id, by)
    flow = validate(found.yaml_text, f"proposal-{found.id}.yaml")  # the registries may have changed since
    found.status, found.decided_by, found.decided_at = PUBLISHED, by, as_utc(now)
    record(session, _operator(by), now, "approve_flow", f"flow_proposal:{found.id}", proposed_by=found.proposed_by)
    done = publish(session, flow, by=found.proposed_by, approved_by=by, proposal_id=found.id, now=now, commit=False)
    found.version_id = done.version.id
    session.commit()  # published before any application moves: each move is its own transaction
    report = None
    if found.migrate and migrate_now:
        if engine is None:
            raise InvalidInput("approving a migrating proposal needs the engine", {"engine": ["缺少引擎"]})
        report = migrate(
            session, engine, done.version.id, by=found.proposed_by, approved_by=by, now=now,
            mapping=found.mapping, reason=f"flow proposal {found.id}", on_item=on_item, progress=progress,
        )  # fmt: skip
        found.migration = {k: v for k, v in report.to_dict().items() if k != "items"}
        session.commit()
    log.info("%s approved flow proposal %d: version %d %s", by, found.id, done.version.id, done.outcome)
    return Approval(found, done, report)


def reject(session: Session, proposal_id: int, *, by: str, now: datetime, reason: str) -> FlowProposal:
    """A second admin rejects, with a reason (required)."""
    found = _decidable(session, proposal_id, by)
    reason = reason.strip()
    if not reason or len(reason) > MAX_NOTE:
        raise InvalidInput("rejection reason missing or too long", {"reason": ["请填写驳回原因（不超过2000字）"]})
    found.status, found.decided_by, found.decided_at, found.reason = REJECTED, by, as_utc(now), reason
    record(session, _operator(by), now, "reject_flow", f"flow_proposal:{found.id}", reason=reason)
    session.commit()
    return found


def describe_proposal(found: FlowProposal) -> str:
    """One line for the CLI."""
    counts = (found.impact or {}).get("counts", {})
    impact_text = ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "no applications in flight"
    decided = f" by {found.decided_by}" if found.decided_by else ""
    return (
        f"proposal {found.id} [{found.status}{decided}] {found.flow} {found.sha256[:12]} "
        f"proposed by {found.proposed_by} at {as_utc(found.proposed_at).isoformat(timespec='seconds')}"
        f"{' (migrate on approval)' if found.migrate else ''}: {impact_text}"
    )

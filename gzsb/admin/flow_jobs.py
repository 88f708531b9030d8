"""Fleet jobs: an impact report or a migration over a large fleet, run by the worker with a
progress row the workbench polls (issue 11: "an impact report or migration over a large
fleet shows progress").

A small fleet (``FLOW_JOB_SYNC_MAX`` applications or fewer) is answered in the request, as
before; a larger one becomes a ``FlowJob`` row plus an outbox job, so the request returns at
once and any node can answer the polling. A worker killed mid-job leaves the row ``running``
and the outbox lease runs out: the tick queues it again and ``run`` starts it over (an
impact report is a pure read; a migration skips the applications already moved). No Flask.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.admin import flows
from gzsb.admin.flow_fleet import MigrationItem, count_in_flight
from gzsb.common.beijing import as_utc
from gzsb.errors import InvalidInput, NotFound
from gzsb.models import FlowJob, FlowProposal
from gzsb.workflow.engine import Engine

log = logging.getLogger(__name__)

IMPACT, MIGRATE = "impact", "migrate"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
LISTED = 50  # applications kept per class (or per migration outcome); the counts are exact
# How often a running job writes its progress (and renews its lease): a row update per step.
IMPACT_STEP = 2_000
MIGRATE_STEP = 200

Heartbeat = Callable[[], None]


def large(session: Session, flow_name: str, limit: int) -> bool:
    """Whether the in-flight fleet of ``flow_name`` is too big to answer in a request."""
    return count_in_flight(session, flow_name) > limit


def start_impact(session: Session, text: str, *, by: str, now: datetime, proposal_id: int | None = None) -> FlowJob:
    """A job row for the impact of ``text`` (validated here: a bad YAML never gets a job);
    with ``proposal_id``, its report becomes that proposal's. Flushed, not committed."""
    flows.check_admin(session, by)
    flow = flows.validate(text, "impact.yaml")
    return _add(session, IMPACT, flow.flow, by, now, yaml_text=flow.text, proposal_id=proposal_id)


def start_migration(session: Session, proposal_id: int, *, by: str, now: datetime) -> FlowJob:
    """A job row for the migration an approved, migrating proposal asked for."""
    flows.check_admin(session, by)
    found = flows.proposal(session, proposal_id)
    if found.status != flows.PUBLISHED or not found.migrate or found.version_id is None:
        raise InvalidInput(
            f"proposal {proposal_id} is {found.status}, migrate={found.migrate}: nothing to migrate",
            {"proposal": ["该提案尚未发布或未要求迁移"]},
        )
    return _add(session, MIGRATE, found.flow, by, now, proposal_id=found.id)


def _add(session: Session, kind: str, flow: str, by: str, now: datetime, **fields: Any) -> FlowJob:
    job = FlowJob(kind=kind, status=QUEUED, flow=flow, requested_by=by, created_at=as_utc(now),
                  total=count_in_flight(session, flow), done=0, result={}, error="", **fields)  # fmt: skip
    session.add(job)
    session.flush()
    log.info("%s job %d queued by %s over %d applications of %s", kind, job.id, by, job.total, flow)
    return job


def job(session: Session, job_id: int) -> FlowJob:
    found = session.get(FlowJob, job_id)
    if found is None:
        raise NotFound(f"flow job {job_id} does not exist", public="未找到该后台任务")
    return found


def latest_for(session: Session, proposal_id: int) -> FlowJob | None:
    """The newest job of a proposal (its impact report or its migration), if any."""
    return session.scalars(
        select(FlowJob).where(FlowJob.proposal_id == proposal_id).order_by(FlowJob.id.desc()).limit(1)
    ).first()


def run(
    session: Session, engine: Engine, job_id: int, *, now: datetime, heartbeat: Heartbeat | None = None
) -> FlowJob | None:
    """Run one job to its end, writing progress as it goes; a failure ends the job ``failed``
    with its reason (shown to the admin, who may start it again). None for an unknown job;
    a finished one is returned untouched (its outbox row was queued twice)."""
    found = session.get(FlowJob, job_id)
    if found is None or found.status in (DONE, FAILED):
        return found
    found.status, found.started_at, found.done = RUNNING, as_utc(now), 0
    found.total = count_in_flight(session, found.flow)
    session.commit()

    def progress(done: int) -> None:
        found.done = done
        if heartbeat is not None:
            heartbeat()
        session.commit()

    try:
        result = (
            _impact(session, found, now, progress)
            if found.kind == IMPACT
            else _migrate(session, engine, found, now, progress)
        )
    except Exception as exc:  # noqa: BLE001 - any failure is the job's result, said on the page
        session.rollback()
        found = job(session, job_id)
        found.status, found.finished_at = FAILED, as_utc(now)
        found.error = f"{type(exc).__name__}: {exc}"[:1000]
        session.commit()
        log.exception("flow job %d (%s) failed", job_id, found.kind)
        return found
    found.result, found.status, found.finished_at = result, DONE, as_utc(now)
    found.done = int(result.get("total", found.done))
    session.commit()
    log.info("flow job %d (%s) done: %d applications", found.id, found.kind, found.done)
    return found


def _impact(session: Session, found: FlowJob, now: datetime, progress: Callable[[int], None]) -> dict[str, Any]:
    candidate = flows.validate(found.yaml_text, f"job-{found.id}.yaml")
    report = flows.impact_report(
        session, candidate, now=now, flow_name=candidate.flow, limit=LISTED, progress=progress, every=IMPACT_STEP
    ).to_dict()
    if found.proposal_id is not None:
        owner = session.get(FlowProposal, found.proposal_id)
        if owner is not None:
            owner.impact = report
    return report


def _migrate(
    session: Session, engine: Engine, found: FlowJob, now: datetime, progress: Callable[[int], None]
) -> dict[str, Any]:
    owner = flows.proposal(session, found.proposal_id or 0)
    seen = 0

    def step(_item: MigrationItem) -> None:
        nonlocal seen
        seen += 1
        if seen % MIGRATE_STEP == 0:
            progress(seen)

    report = flows.migrate(
        session, engine, owner.version_id or 0, by=owner.proposed_by, approved_by=owner.decided_by, now=now,
        mapping=owner.mapping, reason=f"flow proposal {owner.id}", on_item=step,
    )  # fmt: skip
    summary = {**report.to_dict(), "total": report.total, "ok": report.ok}
    owner.migration = {k: v for k, v in summary.items() if k != "items"}
    summary["items"] = summary["items"][:LISTED] + [i for i in summary["items"][LISTED:] if i["outcome"] != "moved"]
    return summary


def status(found: FlowJob) -> dict[str, Any]:
    """What the polling page needs (the result itself is rendered by the view)."""
    percent = 100 if found.status == DONE else (min(99, found.done * 100 // found.total) if found.total else 0)
    return {
        "id": found.id,
        "kind": found.kind,
        "status": found.status,
        "done": found.done,
        "total": found.total,
        "percent": percent,
        "error": found.error,
        "proposal_id": found.proposal_id,
        "finished": found.status in (DONE, FAILED),
    }

"""What the auditor console reads, in one adapter: every call into the audit backend is here.

The views only talk to this module (and ``whatif_view`` for the what-if table). The fleet
view reads the transparency log (latest checkpoint, witness cosignatures, events not yet
logged); verify runs are ``FleetCheck`` passes stored as ``AuditRun`` rows, so every app
node shows the same runs; one application is verified with the log-aware check (each
event's inclusion in the latest checkpoint); the download is the offline bundle.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gzsb.audit.bundle import export_bundle
from gzsb.audit.log import LogConfig, checkpoint, latest_checkpoint
from gzsb.audit.service import FleetCheck, LogPolicy, default_redactor, find_application
from gzsb.errors import NotFound
from gzsb.models import (
    Application,
    AuditRun,
    FlowVersion,
    HistoryEvent,
    LogCosignature,
    LogState,
)
from gzsb.store import FLOWS
from gzsb.workflow.checkpoint import Signer, Verifier
from gzsb.workflow.history import Verdict

log = logging.getLogger(__name__)

QUERY_MAX = 40
SERIAL = re.compile(r"^\d{4}-[A-Z0-9]{1,16}-\d{6}$")
ROLE_LABELS = {"student": "考生", "staff": "确认点工作人员", "admin": "管理员", "system": "系统", "auditor": "审计员"}
# Failures kept per verify run for the page; the counts are always complete.
FAILURES_SHOWN = 200
RUNS_SHOWN = 20
# A run still unfinished after this long broke off (its process died): another may start.
RUN_STALE = timedelta(hours=2)
# Background runs write their progress every so many applications.
PROGRESS_EVERY = 500
NOT_FOUND = "未找到对应的报名记录，请核对后重新输入"
BAD_QUERY = "请输入报名序号（如 2027-NK01-000001）或18位身份证号"


# ------------------------------------------------------------------------------ fleet


@dataclass(frozen=True)
class StateCount:
    state: str
    label: str
    count: int


@dataclass(frozen=True)
class CheckpointView:
    id: int
    size: int
    at: datetime
    root_prefix: str
    signed_by: str
    cosigned_by: tuple[str, ...] = ()
    cosigned_at: datetime | None = None


@dataclass(frozen=True)
class Fleet:
    applications: int
    events: int
    states: list[StateCount]
    checkpoint: CheckpointView | None
    log_size: int = 0
    unlogged: int = 0


def _labels(session: Session) -> dict[str, str]:
    """State labels of every published version, newest last so it wins."""
    labels: dict[str, str] = {}
    for version_id in session.scalars(select(FlowVersion.id).order_by(FlowVersion.id)):
        labels.update({name: s.label for name, s in FLOWS.by_version(session, version_id).states.items()})
    return labels


def fleet(session: Session) -> Fleet:
    applications = session.scalar(select(func.count()).select_from(Application)) or 0
    events = session.scalar(select(func.count()).select_from(HistoryEvent)) or 0
    unlogged = session.scalar(select(func.count()).where(HistoryEvent.log_index.is_(None))) or 0
    labels = _labels(session)
    rows = session.execute(select(Application.state, func.count()).group_by(Application.state))
    states = sorted((StateCount(s, labels.get(s, s), n) for s, n in rows), key=lambda c: (-c.count, c.state))
    log_size = session.scalar(select(LogState.size)) or 0
    return Fleet(applications, events, states, last_checkpoint(session), log_size, unlogged)


def last_checkpoint(session: Session) -> CheckpointView | None:
    """The latest signed checkpoint: size, time, root, signer and the witnesses that cosigned it."""
    row = latest_checkpoint(session)
    if row is None:
        return None
    cosigs = session.execute(
        select(LogCosignature.witness, LogCosignature.cosigned_at)
        .where(LogCosignature.checkpoint_id == row.id)
        .order_by(LogCosignature.id)
    ).all()
    return CheckpointView(
        id=row.id,
        size=row.size,
        at=row.created_at,
        root_prefix=bytes(row.root).hex()[:16],
        signed_by=row.note.split("\n", 1)[0],  # the origin line: the log's key name
        cosigned_by=tuple(dict.fromkeys(name for name, _ in cosigs)),
        cosigned_at=max((at for _, at in cosigs), default=None),
    )


def log_config() -> LogConfig:
    signer = Signer.parse(current_app.config["LOG_SIGNING_KEY"])
    return LogConfig(signer, signer.name)


def log_policy() -> LogPolicy:
    """The configured log key and witness key, pinned; the witness is shown, not required."""
    key = log_config().verifier
    witness = current_app.config.get("WITNESS_KEY") or ""
    return LogPolicy(key, key.name, (Verifier.parse(witness),) if witness else ())


def checkpoint_now(session: Session) -> CheckpointView:
    """Integrate the not-yet-logged events and sign a checkpoint, as ``flask audit checkpoint`` does."""
    checkpoint(session, log_config(), batch=current_app.config["LOG_BATCH"])
    view = last_checkpoint(session)
    assert view is not None
    return view


# ------------------------------------------------------------------------ verify runs


@dataclass(frozen=True)
class Failure:
    application: str
    seq: int | None
    problem: str
    tree_index: int | None = None


_APP_FAILURE = re.compile(r"^application (\w+): FAILED at seq (\d+): (.*)$", re.S)
_TREE_INDEX = re.compile(r"^tree index(?:es)? (\d+)")
_LEAF_REF = re.compile(r"application (\w+) seq (\d+)")


def failure_of(text: str) -> Failure:
    """A stored problem line as the page shows it (application, seq, tree index)."""
    found = _APP_FAILURE.match(text)
    if found:
        return Failure(found.group(1), int(found.group(2)), found.group(3))
    index = _TREE_INDEX.match(text)
    ref = _LEAF_REF.search(text)
    return Failure(
        ref.group(1) if ref else "", int(ref.group(2)) if ref else None, text, int(index.group(1)) if index else None
    )


@dataclass(frozen=True)
class VerifyRun:
    number: int
    started_at: datetime
    finished_at: datetime | None
    checked: int
    events: int
    failed: int
    ok: bool
    failures: list[Failure]
    checkpoint_size: int | None
    total: int

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else 0.0

    @property
    def error(self) -> str:
        return next((f.problem for f in self.failures if f.problem.startswith("verify broke off")), "")

    @property
    def log_failures(self) -> int:
        return sum(1 for f in self.failures if f.tree_index is not None)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def runs(session: Session, total: int = 0) -> list[VerifyRun]:
    """The latest fleet verify runs, newest first, as stored (every app node sees the same)."""
    rows = session.scalars(
        select(AuditRun).where(AuditRun.scope == "all").order_by(AuditRun.id.desc()).limit(RUNS_SHOWN)
    )
    return [
        VerifyRun(
            number=r.id,
            started_at=_aware(r.started_at),
            finished_at=_aware(r.finished_at) if r.finished_at else None,
            checked=r.applications,
            events=r.events,
            failed=r.failed,
            ok=r.ok,
            failures=[failure_of(p) for p in (r.problems or [])],
            checkpoint_size=r.checkpoint_size,
            total=total,
        )
        for r in rows
    ]


def running(session: Session, now: datetime) -> AuditRun | None:
    return session.scalars(
        select(AuditRun)
        .where(AuditRun.scope == "all", AuditRun.finished_at.is_(None), AuditRun.started_at > now - RUN_STALE)
        .order_by(AuditRun.id.desc())
        .limit(1)
    ).first()


# Fleets up to this many events are verified within the request; larger ones in a
# background thread that writes its progress into its AuditRun row.
INLINE_EVENTS = 20_000


def start_run(session: Session, now: datetime) -> tuple[FleetCheck, bool]:
    """A new fleet check with its AuditRun row (started), or False when one is already running."""
    if running(session, now) is not None:
        return FleetCheck(session), False
    check = FleetCheck(session, default_redactor(), log_policy(), failures_kept=FAILURES_SHOWN)
    check.begin(now)
    return check, True


def resume_run(session: Session, run_id: int) -> FleetCheck:
    """The check of a started run, in another session (a background thread's)."""
    check = FleetCheck(session, default_redactor(), log_policy(), failures_kept=FAILURES_SHOWN)
    check.run = session.get(AuditRun, run_id)
    return check


def run_verify(check: FleetCheck) -> AuditRun:
    """Consume the check (streamed: memory stays flat) and store its result in its run row."""
    started = time.perf_counter()
    try:
        for verdict in check.verdicts():
            if check.applications % PROGRESS_EVERY == 0:
                check.progress()
            del verdict
    except Exception as exc:
        log.exception("verify run broke off after %d application(s)", check.applications)
        check.session.rollback()
        check.problems.insert(0, f"verify broke off: {type(exc).__name__}")
        check.record()
        raise
    run = check.record()
    log.info(
        "verify run %d: %d application(s), %d event(s), %d failed, %d log problem(s) in %.2f s",
        run.id, run.applications, run.events, run.failed, len(check.problems), time.perf_counter() - started,
    )  # fmt: skip
    return run


@dataclass(frozen=True)
class ApplicationCheck:
    verdict: Verdict
    problems: list[Failure]
    checkpoint_size: int | None
    proven: int  # events whose inclusion in the checkpoint was checked
    unlogged: int


def verify_application(session: Session, uid: str) -> ApplicationCheck:
    """Replay, data binding and each logged event's inclusion in the latest checkpoint."""
    check = FleetCheck(session, default_redactor(), log_policy(), uid[:32])
    verdict = next(iter(list(check.verdicts())), None)  # to the end: the log checks run last
    if verdict is None:
        raise NotFound(f"application {uid} does not exist", public=NOT_FOUND)
    size = check.checkpoint.size if check.checkpoint is not None else None
    failures = [failure_of(p) for p in check.problems]
    proven = check.proven
    return ApplicationCheck(verdict, failures, size, proven, check.unlogged)


# ----------------------------------------------------------------------------- export


def export(session: Session, uid: str) -> tuple[str, bytes]:
    """The offline bundle (events, flows, inclusion proofs, cosigned checkpoint): file name and bytes."""
    try:
        app = find_application(session, uid[:32])
    except NotFound:
        raise NotFound(f"application {uid[:32]} does not exist", public=NOT_FOUND) from None
    return f"gzsb-bundle-{app.uid}.json", export_bundle(session, app.uid, default_redactor())  # type: ignore[arg-type]


# The verifier names problems in English (CLI and logs); the page leads with Chinese.
PROBLEMS_ZH = (
    ("prev hash does not match", "与前一事件的哈希不衔接（事件被删除、插入或调换）"),
    ("hash does not match", "事件内容与其哈希不符（事件被改动）"),
    ("comes after the recorded head", "事件位于报名记录的链头之后（链头被回滚或事件被追加）"),
    ("ends before the recorded head", "历史记录短于报名记录的链头（事件被删除）"),
    ("is missing", "缺少事件"),
    ("recorded under flow", "事件记录的流程版本不符"),
    ("starts from", "事件的起始状态与之前的状态不符"),
    ("does not lead from", "该流程中没有这一状态迁移"),
    ("may not fire", "该角色无权触发此事件"),
    ("application row says state", "报名记录的当前状态与历史记录不符"),
    ("guard", "条件检查记录与流程不符"),
    ("no longer matches its logged leaf", "事件与透明日志中记录的叶子不符（事件被改写）"),
    ("its event no longer exists", "透明日志中的事件已不存在（事件或报名被删除）"),
    ("do not give the root", "透明日志前缀与已签名检查点的根哈希不符（历史被改写）"),
    ("not in checkpoint", "事件无法证明包含在检查点中"),
    ("claimed by two events", "两个事件占用同一树索引"),
    ("checkpoint", "检查点签名或大小有误"),
    ("verify broke off", "校验中断"),
)


def problem_zh(problem: str) -> str:
    for needle, text in PROBLEMS_ZH:
        if needle in problem:
            return text
    return "校验未通过"

"""What the auditor console reads, in one adapter: every call into the audit backend is here.

The views only talk to this module. Today it is built on ``gzsb.audit.service``
(``verify_all``, ``application_history``) and ``gzsb.workflow.history`` (``replay``,
``export_lines``); the transparency log's checkpoints, stored verify runs, bundles with
inclusion proofs and the guard-aware what-if replay replace the functions marked
"switch point" when they land, without touching views or templates.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gzsb.accounts.idcard import parse_id_number
from gzsb.audit.service import application_history, verify_all
from gzsb.common.security import Vault, mask_id_number, mask_name, mask_text
from gzsb.errors import InvalidInput, NotFound
from gzsb.models import Account, Application, ConfirmationPoint, FlowVersion, HistoryEvent, RegistrationForm
from gzsb.store import FLOWS
from gzsb.workflow.graph import render_svg
from gzsb.workflow.history import EventRow, Verdict
from gzsb.workflow.history_export import export_lines
from gzsb.workflow.history_replay import replay
from gzsb.workflow.machine import MACHINES
from gzsb.workflow.spec import FlowSpec

log = logging.getLogger(__name__)

QUERY_MAX = 40
SERIAL = re.compile(r"^\d{4}-[A-Z0-9]{1,16}-\d{6}$")
ROLE_LABELS = {"student": "考生", "staff": "确认点工作人员", "admin": "管理员", "system": "系统", "auditor": "审计员"}
# Failures kept per verify run for the page; the count is always complete.
FAILURES_SHOWN = 200
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
    size: int
    at: datetime
    root_prefix: str
    signed_by: str
    cosigned_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fleet:
    applications: int
    events: int
    states: list[StateCount]
    checkpoint: CheckpointView | None


def _labels(session: Session) -> dict[str, str]:
    """State labels of every published version, newest last so it wins."""
    labels: dict[str, str] = {}
    for version_id in session.scalars(select(FlowVersion.id).order_by(FlowVersion.id)):
        labels.update({name: s.label for name, s in FLOWS.by_version(session, version_id).states.items()})
    return labels


def fleet(session: Session) -> Fleet:
    applications = session.scalar(select(func.count()).select_from(Application)) or 0
    events = session.scalar(select(func.count()).select_from(HistoryEvent)) or 0
    labels = _labels(session)
    rows = session.execute(select(Application.state, func.count()).group_by(Application.state))
    states = sorted((StateCount(s, labels.get(s, s), n) for s, n in rows), key=lambda c: (-c.count, c.state))
    return Fleet(applications, events, states, last_checkpoint(session))


def last_checkpoint(session: Session) -> CheckpointView | None:
    """Switch point: the transparency log's latest signed checkpoint (size, time, root,
    signer, witness cosignatures). No checkpoint table exists in this build yet."""
    return None


# ------------------------------------------------------------------------ verify runs


@dataclass(frozen=True)
class Failure:
    application: str
    seq: int | None
    problem: str


@dataclass
class VerifyRun:
    number: int
    started_at: datetime
    by: str
    total: int = 0  # applications when the run started (for progress)
    checked: int = 0
    events: int = 0
    failed: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.finished.is_set()

    @property
    def ok(self) -> bool:
        return self.done and not self.failed and not self.error


class RunLog:
    """The latest verify runs of this process, at most one running at a time. Switch
    point: the teammate's verify-run table keeps them across processes and restarts."""

    KEEP = 20

    def __init__(self) -> None:
        self._runs: deque[VerifyRun] = deque(maxlen=self.KEEP)
        self._lock = threading.Lock()
        self._numbers = 0

    def start(self, *, now: datetime, by: str, total: int) -> tuple[VerifyRun, bool]:
        """A new run, or the one still running (False): repeated clicks start nothing."""
        with self._lock:
            for run in self._runs:
                if not run.done:
                    return run, False
            self._numbers += 1
            run = VerifyRun(self._numbers, now, by, total=total)
            self._runs.appendleft(run)
            return run, True

    def latest(self) -> list[VerifyRun]:
        with self._lock:
            return list(self._runs)

    @property
    def running(self) -> bool:
        return any(not run.done for run in self.latest())


# Fleets up to this many events are verified within the request (about 3 s at the ~7,000
# events/s measured through this page on the shared 2-core machine; bench/RESULTS.md has
# ~120,000 on an idle one); larger ones in a background thread with progress.
INLINE_EVENTS = 20_000


def run_verify(session: Session, run: VerifyRun) -> VerifyRun:
    """Replay every application under its own flow version (streamed: memory stays flat),
    counting into ``run`` as it goes so a page can show progress."""
    started = time.perf_counter()
    try:
        for verdict in verify_all(session):
            run.checked += 1
            run.events += verdict.events
            if not verdict.ok:
                run.failed += 1
                if len(run.failures) < FAILURES_SHOWN:
                    run.failures.append(Failure(verdict.application, verdict.bad_seq, verdict.problem))
    except Exception as exc:
        run.error = type(exc).__name__
        log.exception("verify run %d failed after %d application(s)", run.number, run.checked)
        raise
    finally:
        run.seconds = time.perf_counter() - started
        run.finished.set()
    log.info(
        "verify run %d by %s: %d application(s), %d event(s), %d failed in %.2f s",
        run.number, run.by, run.checked, run.events, run.failed, run.seconds,
    )  # fmt: skip
    return run


def verify_application(session: Session, uid: str) -> Verdict:
    """Switch point: the log-aware verify (inclusion in the cosigned tree, data binding)."""
    for verdict in verify_all(session, uid):
        return verdict
    raise NotFound(f"application {uid} does not exist", public=NOT_FOUND)


# ------------------------------------------------------------------------------- find


def normalize_query(text: str) -> str:
    """NFKC (full-width digits and dashes become ASCII), no spaces, upper case, capped."""
    value = unicodedata.normalize("NFKC", text or "")[: QUERY_MAX * 2]
    return re.sub(r"\s+", "", value).upper()[:QUERY_MAX]


def find_application(session: Session, vault: Vault, text: str, today: date) -> str:
    """The uid of the application with this 报名序号 or ID number (blind index).

    Raises InvalidInput for a malformed query, NotFound (same message for both kinds)
    when nothing matches."""
    query = normalize_query(text)
    if not query.isascii():
        raise InvalidInput("non-ASCII query", {"q": [BAD_QUERY]})
    if SERIAL.match(query):
        uid = session.scalar(
            select(Application.uid)
            .join(RegistrationForm, RegistrationForm.application_id == Application.id)
            .where(RegistrationForm.serial == query)
        )
    else:
        try:
            person = parse_id_number(query, today=today)
        except ValueError as exc:
            raise InvalidInput("malformed query", {"q": [BAD_QUERY if "-" in query else str(exc)]}) from None
        uid = session.scalar(
            select(Application.uid)
            .join(Account, Account.id == Application.account_id)
            .where(Account.id_number_index == vault.index(person.value))
            .order_by(Application.id.desc())
            .limit(1)
        )
    if uid is None:
        raise NotFound("no application for the auditor's query", public=NOT_FOUND)
    return uid


# --------------------------------------------------------------------------- dossier


@dataclass(frozen=True)
class GuardBranch:
    dest: str
    dest_label: str
    results: list[tuple[str, bool]]
    taken: bool


@dataclass(frozen=True)
class TimelineEvent:
    seq: int
    at: datetime
    event: str
    label: str
    from_state: str
    from_label: str
    to_state: str
    to_label: str
    actor: str
    role: str
    role_label: str
    guards: list[GuardBranch]
    payload: str
    hash: str
    prev_hash: str


@dataclass(frozen=True)
class Dossier:
    uid: str
    name: str
    id_number: str
    state: str
    state_label: str
    flow_version_id: int
    flow_sha256: str
    flow_title: str
    flow_published_at: datetime
    serial: str
    point: str
    head: str
    events: list[TimelineEvent]

    @property
    def path(self) -> list[tuple[str, str]]:
        return [(e.from_state, e.to_state) for e in self.events]


def _label(flow: FlowSpec, event: str, source: str, dest: str) -> str:
    for branch in flow.branches(event, source):
        if branch.dest == dest and branch.label:
            return branch.label
    return event


def _state_label(flow: FlowSpec, name: str) -> str:
    state = flow.states.get(name)
    return state.label if state else name


def _guard_branches(flow: FlowSpec, text: str, dest: str) -> list[GuardBranch]:
    try:
        recorded = json.loads(text)
    except ValueError:
        return []
    branches = []
    for item in recorded if isinstance(recorded, list) else []:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
            continue
        results = [(str(r[0]), bool(r[1])) for r in item[1] if isinstance(r, list) and len(r) == 2]
        taken = item[0] == dest and all(ok for _, ok in results)
        branches.append(GuardBranch(str(item[0]), _state_label(flow, str(item[0])), results, taken))
    return branches


def _payload_text(text: str) -> str:
    """Pretty JSON; personal fields are already keyed hashes in the history, and any ID
    number or mobile that slipped into free text is masked as well."""
    try:
        value = json.loads(text)
    except ValueError:
        return mask_text(text)
    if value in ({}, []):
        return ""
    return mask_text(json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True))


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def timeline(flow: FlowSpec, rows: list[EventRow]) -> list[TimelineEvent]:
    return [
        TimelineEvent(
            seq=r.seq,
            at=_moment(r.at),
            event=r.event,
            label=_label(flow, r.event, r.from_state, r.to_state),
            from_state=r.from_state,
            from_label=_state_label(flow, r.from_state),
            to_state=r.to_state,
            to_label=_state_label(flow, r.to_state),
            actor=r.actor,
            role=r.role,
            role_label=ROLE_LABELS.get(r.role, r.role),
            guards=_guard_branches(flow, r.guards, r.to_state),
            payload=_payload_text(r.payload),
            hash=r.hash,
            prev_hash=r.prev_hash,
        )
        for r in rows
    ]


def dossier(session: Session, vault: Vault, uid: str) -> Dossier:
    app, rows = _history(session, uid)
    flow = FLOWS.by_version(session, app.flow_version_id)
    version = app.flow_version
    form = session.scalars(select(RegistrationForm).where(RegistrationForm.application_id == app.id)).first()
    account = app.account
    point = session.get(ConfirmationPoint, app.confirmation_point_id) if app.confirmation_point_id else None
    return Dossier(
        uid=app.uid,
        name=mask_name(account.name),
        id_number=mask_id_number(vault.decrypt(account.id_number_enc)),
        state=app.state,
        state_label=_state_label(flow, app.state),
        flow_version_id=version.id,
        flow_sha256=version.sha256,
        flow_title=flow.title,
        flow_published_at=version.published_at,
        serial=form.serial if form else "",
        point=point.name if point else "",
        head=app.head,
        events=timeline(flow, rows),
    )


def _history(session: Session, uid: str) -> tuple[Application, list[EventRow]]:
    try:
        return application_history(session, uid[:32])
    except NotFound:
        raise NotFound(f"application {uid[:32]} does not exist", public=NOT_FOUND) from None


def flow_svg(session: Session, uid: str) -> bytes:
    """The application's own flow version with its path drawn (graphviz, our own data)."""
    app, rows = _history(session, uid)
    flow = FLOWS.by_version(session, app.flow_version_id)
    return render_svg(flow, [(r.from_state, r.to_state) for r in rows])


# ----------------------------------------------------------------------------- export


def export(session: Session, uid: str) -> tuple[str, Iterator[str]]:
    """Switch point: the bundle with inclusion proofs and the cosigned checkpoint.
    Today: the gzsb-history/1 JSON lines. The file name and the lines."""
    app, rows = _history(session, uid)
    flow = FLOWS.by_version(session, app.flow_version_id)
    lines = export_lines(app.uid, flow, app.state, app.head, rows)
    return f"gzsb-history-{app.uid}.jsonl", (line + "\n" for line in lines)


# ---------------------------------------------------------------------------- what-if


@dataclass(frozen=True)
class VersionOption:
    id: int
    flow: str
    sha256: str
    published_at: datetime
    published_by: str


@dataclass(frozen=True)
class WhatIfRow:
    seq: int
    label: str
    from_label: str
    to_label: str
    status: str  # legal / illegal / after (not reached: an earlier event already broke)
    problem: str
    # Guards the other flow checks on this move: (guard, result then or None if not checked then).
    guards: list[tuple[str, bool | None]]
    exists: bool  # the move itself exists in the other flow (for events after the break)

    @property
    def unchecked(self) -> list[str]:
        return [name for name, result in self.guards if result is None]


@dataclass(frozen=True)
class WhatIf:
    version: VersionOption
    ok: bool
    stops_at: int | None
    problem: str
    rows: list[WhatIfRow]
    reevaluated: bool = False  # True once the guard-aware replay can re-evaluate from bound data


def versions(session: Session) -> list[VersionOption]:
    rows = session.scalars(select(FlowVersion).order_by(FlowVersion.id.desc()))
    return [VersionOption(v.id, v.flow, v.sha256, v.published_at, v.published_by) for v in rows]


def _recorded_results(text: str, dest: str) -> dict[str, bool]:
    """Guard results recorded for the branch that was taken."""
    try:
        recorded = json.loads(text)
    except ValueError:
        return {}
    for item in reversed(recorded if isinstance(recorded, list) else []):
        if isinstance(item, list) and len(item) == 2 and item[0] == dest and isinstance(item[1], list):
            return {str(r[0]): bool(r[1]) for r in item[1] if isinstance(r, list) and len(r) == 2}
    return {}


def what_if(session: Session, uid: str, version_id: int) -> WhatIf:
    """Switch point: ``gzsb.workflow.whatif`` re-evaluates the other flow's new guards from
    the data bound into each event. Today: replay without the chain under the other
    flow (first illegal event named) and, per event, the guards it would check, with the
    result recorded then where the same guard was checked."""
    app, rows = _history(session, uid)
    row = session.get(FlowVersion, version_id)
    if row is None:
        raise NotFound(f"flow version {version_id} does not exist", public="所选流程版本不存在")
    option = VersionOption(row.id, row.flow, row.sha256, row.published_at, row.published_by)
    other = FLOWS.by_version(session, version_id)
    own = FLOWS.by_version(session, app.flow_version_id)

    def state_label(name: str) -> str:
        # A state the other flow lacks keeps its own label, marked as missing there.
        return _state_label(other, name) if name in other.states else f"{_state_label(own, name)}（新流程中无此状态）"

    verdict = replay(app.uid, other, rows, state=app.state, check_chain=False)
    machine = MACHINES.get(other)
    out = []
    for r in rows:
        branch = machine.legal(r.from_state, r.event, r.to_state)
        recorded = _recorded_results(r.guards, r.to_state)
        guards = [(g.describe(), recorded.get(g.describe())) for g in branch.guards] if branch else []
        if verdict.ok or r.seq < (verdict.bad_seq or 0):
            status, problem = "legal", ""
        elif r.seq == verdict.bad_seq:
            status, problem = "illegal", verdict.problem
        else:
            status, problem = "after", ""
        out.append(
            WhatIfRow(
                seq=r.seq,
                label=_label(other if branch else own, r.event, r.from_state, r.to_state),
                from_label=state_label(r.from_state),
                to_label=state_label(r.to_state),
                status=status,
                problem=problem,
                guards=guards,
                exists=branch is not None and r.role in branch.actors,
            )
        )
    return WhatIf(option, verdict.ok, None if verdict.ok else verdict.bad_seq, verdict.problem, out)


def whatif_summary(result: WhatIf) -> dict[str, Any]:
    """Counts the page shows above the table."""
    return {
        "legal": sum(1 for r in result.rows if r.status == "legal"),
        "unchecked": sum(1 for r in result.rows if r.status == "legal" and r.unchecked),
        "total": len(result.rows),
    }


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
)


def problem_zh(problem: str) -> str:
    for needle, text in PROBLEMS_ZH:
        if needle in problem:
            return text
    return "校验未通过"

"""One application in the auditor console: find it, its timeline with tree indexes, its
flow diagram, and the what-if table (``gzsb.workflow.whatif`` shaped for the page)."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.accounts.idcard import parse_id_number
from gzsb.audit.console import BAD_QUERY, NOT_FOUND, QUERY_MAX, ROLE_LABELS, SERIAL
from gzsb.audit.service import application_history
from gzsb.common.security import Vault, mask_id_number, mask_name, mask_text
from gzsb.errors import InvalidInput, NotFound
from gzsb.models import Account, Application, ConfirmationPoint, FlowVersion, HistoryEvent, RegistrationForm
from gzsb.store import FLOWS
from gzsb.workflow.graph import render_svg
from gzsb.workflow.history import EventRow
from gzsb.workflow.spec import FlowSpec
from gzsb.workflow.whatif import whatif

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
    tree_index: int | None = None  # the event's leaf in the transparency log (None: not logged yet)


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


def timeline(flow: FlowSpec, rows: list[EventRow], indexes: dict[int, int | None] | None = None) -> list[TimelineEvent]:
    indexes = indexes or {}
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
            tree_index=indexes.get(r.seq),
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
        events=timeline(flow, rows, tree_indexes(session, app.id)),
    )


def tree_indexes(session: Session, application_id: int) -> dict[int, int | None]:
    """seq → the event's tree index in the transparency log."""
    rows = session.execute(
        select(HistoryEvent.seq, HistoryEvent.log_index).where(HistoryEvent.application_id == application_id)
    )
    return {seq: index for seq, index in rows}


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
    status: str  # legal / illegal (the move is not in the other flow) / refused (a new guard would refuse)
    problem: str
    # Guards the other flow checks on this move that were not checked then: (guard, outcome, text).
    new_guards: list[tuple[str, str, str]]


@dataclass(frozen=True)
class WhatIf:
    version: VersionOption
    ok: bool
    stops_at: int | None
    problem: str
    rows: list[WhatIfRow]


def versions(session: Session) -> list[VersionOption]:
    rows = session.scalars(select(FlowVersion).order_by(FlowVersion.id.desc()))
    return [VersionOption(v.id, v.flow, v.sha256, v.published_at, v.published_by) for v in rows]


def what_if(session: Session, uid: str, version_id: int) -> WhatIf:
    """Each event under the other flow version: is the move there, and what the guards it
    adds say when re-evaluated on the data recorded then ("would be refused: …" /
    "cannot be re-evaluated: needs …")."""
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

    report = whatif(app.uid, other, rows)
    out = []
    for event in report.events:
        status = "illegal" if not event.legal else ("refused" if event.refused else "legal")
        refused = "; ".join(g.describe() for g in event.new_guards if g.outcome == "refused")
        out.append(
            WhatIfRow(
                seq=event.seq,
                label=_label(other if event.legal else own, event.event, event.from_state, event.to_state),
                from_label=state_label(event.from_state),
                to_label=state_label(event.to_state),
                status=status,
                problem=event.problem or refused,
                new_guards=[(g.guard, g.outcome, g.describe()) for g in event.new_guards],
            )
        )
    first = report.first_problem
    problem = "" if first is None else next(r.problem for r in out if r.seq == first.seq)
    return WhatIf(option, first is None, None if first is None else first.seq, problem, out)


def whatif_summary(result: WhatIf) -> dict[str, Any]:
    """Counts the page shows above the table."""
    return {
        "legal": sum(1 for r in result.rows if r.status == "legal"),
        "new_guards": sum(1 for r in result.rows if r.new_guards),
        "refused": sum(1 for r in result.rows if r.status == "refused"),
        "unknown": sum(1 for r in result.rows if any(o == "unknown" for _, o, _ in r.new_guards)),
        "total": len(result.rows),
    }

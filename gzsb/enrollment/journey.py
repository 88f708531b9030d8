"""The 流程页面 as the flow sees it: every stage done / current / waiting / to do / not
needed, the failing guards' reasons, the one right button and the deadlines.

Pure: the view gathers the facts (states visited, whether the 报名表 was downloaded, the
open order's deadline) and this module turns them into what the page shows. Every text
comes from the flow: a state's ``status``, ``waiting`` and ``button``, a stage's label and
button, the guards' own reasons.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from gzsb.common.beijing import beijing_text
from gzsb.identity.names import REQUEST_DATA_DELETION, WITHDRAW_FACE_CONSENT
from gzsb.onsite.names import ONSITE_EVENTS
from gzsb.workflow.engine import EventOption, GuardContext
from gzsb.workflow.ports import Actor
from gzsb.workflow.registry import GUARDS, GuardRegistry
from gzsb.workflow.spec import FlowSpec, StageSpec, TransitionSpec

# Statuses of a stage row, as the stage bar reads them.
STATUS_TEXT = {"done": "已完成", "current": "进行中", "todo": "未开始", "skipped": "无需办理"}
NEEDED_TEXT = "需要办理"
SOME_ONLY = "仅部分考生需要办理"


@dataclass(frozen=True)
class Facts:
    """What the page knows beyond the application row."""

    visited: frozenset[str]
    finished: bool  # the final stage's work is done (the 报名表 was downloaded)
    now: datetime
    window: Any = None  # the registration WindowSpec, if the flow has one
    order_deadline: datetime | None = None
    decided: bool = True  # the data an optional stage depends on is complete


@dataclass
class StageRow:
    stage: StageSpec
    status: str
    text: str
    note: str = ""
    waiting: bool = False

    def __getitem__(self, key: str) -> Any:  # the API and older templates read rows as dicts
        return getattr(self, key)


@dataclass
class Journey:
    state: str
    label: str
    status: str
    waiting: str
    button: str
    final: bool
    rows: list[StageRow]
    reasons: list[str] = field(default_factory=list)
    deadlines: list[tuple[str, str]] = field(default_factory=list)


def optional_reason(
    flow: FlowSpec, stage: str, data: Mapping[str, Any], facts: Facts, guards: GuardRegistry = GUARDS
) -> str | None:
    """None when the optional ``stage`` is needed with this data, else why not: the reason of
    the guard on the way into it (e.g. materials_required's 无需上传审核材料)."""
    entries = [
        t for t in flow.transitions if flow.states[t.dest].stage == stage and flow.states[t.source].stage != stage
    ]
    if not entries:
        return None
    reason: str | None = None
    for t in entries:
        failed = _failing(flow, t, data, facts, guards)
        if failed is None:
            return None
        reason = reason or failed
    return reason


def _failing(
    flow: FlowSpec, t: TransitionSpec, data: Mapping[str, Any], facts: Facts, guards: GuardRegistry
) -> str | None:
    ctx = GuardContext("", t.source, MappingProxyType(dict(data)), flow, Actor.system("journey"), facts.now)
    for call in t.guards:
        reason = guards.get(call.name).check(ctx, call.args)
        if reason is not None:
            return reason
    return None


def stage_rows(flow: FlowSpec, state: str, data: Mapping[str, Any], facts: Facts) -> list[StageRow]:
    spec = flow.states[state]
    keys = [s.key for s in flow.stages]
    position = keys.index(spec.stage) if spec.stage in keys else -1
    visited = {flow.states[s].stage for s in facts.visited | {state} if s in flow.states}
    rows = []
    for i, stage in enumerate(flow.stages):
        if i < position:
            done = stage.key in visited or not stage.optional
            rows.append(StageRow(stage, "done" if done else "skipped", STATUS_TEXT["done" if done else "skipped"]))
        elif i == position and spec.final and facts.finished:
            rows.append(StageRow(stage, "done", STATUS_TEXT["done"]))
        elif i == position:
            text = f"等待{spec.waiting}" if spec.waiting else STATUS_TEXT["current"]
            rows.append(StageRow(stage, "current", text, waiting=bool(spec.waiting)))
        elif stage.optional:
            rows.append(_optional_row(flow, stage, data, facts))
        else:
            rows.append(StageRow(stage, "todo", STATUS_TEXT["todo"]))
    return rows


def _optional_row(flow: FlowSpec, stage: StageSpec, data: Mapping[str, Any], facts: Facts) -> StageRow:
    if not facts.decided:
        return StageRow(stage, "todo", STATUS_TEXT["todo"], note=SOME_ONLY)
    reason = optional_reason(flow, stage.key, data, facts)
    if reason is None:
        return StageRow(stage, "todo", STATUS_TEXT["todo"], note=NEEDED_TEXT)
    return StageRow(stage, "skipped", STATUS_TEXT["skipped"], note=reason)


# Events every page offers beside its own work (PIPL rights): never the page's one action.
# Side activities, not the way on: they neither hide nor explain a blocked step.
RIGHTS_EVENTS = frozenset({WITHDRAW_FACE_CONSENT, REQUEST_DATA_DELETION}) | ONSITE_EVENTS


def blocked_reasons(options: Iterable[EventOption]) -> list[str]:
    """The failing guards' reasons when none of the student's own actions can be taken."""
    own = [o for o in options if o.event not in RIGHTS_EVENTS]
    if not own or any(o.available for o in own):
        return []
    reasons: list[str] = []
    for o in own:
        for r in o.reasons:
            if r not in reasons:
                reasons.append(r)
    return reasons


def journey(
    flow: FlowSpec, state: str, data: Mapping[str, Any], options: Iterable[EventOption], facts: Facts
) -> Journey:
    spec = flow.states[state]
    rows = stage_rows(flow, state, data, facts)
    stage = next((s for s in flow.stages if s.key == spec.stage), None)
    button = spec.button or (stage.button if stage else "") or spec.label
    deadlines: list[tuple[str, str]] = []
    if facts.window is not None and not spec.final:
        deadlines.append(("网上报名截止时间", beijing_text(facts.window.closes) + "（北京时间）"))
    if facts.order_deadline is not None:
        deadlines.append(("订单支付截止时间", beijing_text(facts.order_deadline) + "（北京时间）"))
    return Journey(
        state=state,
        label=spec.label,
        status=spec.status,
        waiting=spec.waiting,
        button=button,
        final=spec.final,
        rows=rows,
        reasons=[] if spec.waiting else blocked_reasons(options),
        deadlines=deadlines,
    )

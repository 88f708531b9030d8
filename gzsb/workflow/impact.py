"""What a candidate flow would do to applications already in flight: one class each.

Classes, decided in this order for an application in state ``s`` with ``data``:

``stranded``
    ``s`` is not in the candidate, or ``s`` is not final there and no transition of the
    candidate leaves it (the events that used to are named).
``unaffected``
    ``s`` is the same in both flows: its state entry, every transition from it (event,
    destination, actors, label, step, guards with their arguments, branch order), its
    timers, the windows its guards refer to and, when a transition from it has a step or
    a guard, the settings. Guards and steps then behave the same under both flows.
``blocked``
    ``s`` is blocked under the candidate (below); the reasons are the guards' Chinese
    reasons, e.g. 报名时间已截止.
``unblocked``
    ``s`` is blocked under the current flow but not under the candidate (a deadline
    extended past ``now``); the reasons are what no longer blocks it.
``can_migrate``
    anything else: something relevant to ``s`` changed and it is not blocked; the reasons
    say what changed (English, like the CLI).

**Blocked.** Guards are evaluated as ``Engine.evaluate`` does (every guard of a branch,
branches of an event in declaration order, the first passing branch wins; the role must
be among the chosen branch's actors), purely, at ``now``, on the application's data; no
step runs and nothing fires. The *deciding roles* of ``s`` are the applicant's
(``student``) when some transition leaving ``s`` names a student, else every role (the
state waits for staff or the system). A transition *leaves* ``s`` when its destination is
another state: self-loops record something but make no progress. Then ``s`` is blocked
unless, for some event from ``s``, the chosen branch leaves ``s`` and names a deciding
role — or some leaving branch of a deciding role was refused only by guards that read
the application's data while the deciding roles can still act in ``s`` (some event's
chosen branch is theirs and stays in ``s``), because acting may change that data
(checking 学籍 before 完成报名). A final state is never blocked.

A guard "reads the data" when evaluating it on an empty, recording mapping touches the
mapping; such guards are evaluated per application, every other guard once per
(flow, state). Guards must therefore read application facts through ``ctx.data`` (or
``ctx.get``) and other flow sections only through their ``refers_to`` argument, as the
registered guards do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from gzsb.workflow.engine import Actor, GuardContext
from gzsb.workflow.impact_changes import outgoing, state_changes
from gzsb.workflow.registry import GUARDS, GuardRegistry
from gzsb.workflow.spec import ROLES, FlowSpec

UNAFFECTED, CAN_MIGRATE, UNBLOCKED, BLOCKED, STRANDED = "unaffected", "can_migrate", "unblocked", "blocked", "stranded"
CLASSES = (UNAFFECTED, CAN_MIGRATE, UNBLOCKED, BLOCKED, STRANDED)
APPLICANT_ROLES = frozenset({"student"})
REFUSED = "当前不能进行此操作"  # the engine's words when no guard gives a reason


@dataclass(frozen=True)
class Impact:
    uid: str
    state: str
    klass: str
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "state": self.state, "class": self.klass, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class ImpactReport:
    """Exact counts; ``items`` keeps at most ``limit`` applications per class."""

    total: int
    counts: Mapping[str, int]
    by_state: Mapping[tuple[str, str], int]
    items: Mapping[str, tuple[Impact, ...]]
    limit: int | None = None

    def truncated(self, klass: str) -> bool:
        return self.counts.get(klass, 0) > len(self.items.get(klass, ()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "counts": dict(self.counts),
            "by_state": [{"class": k, "state": s, "count": n} for (k, s), n in sorted(self.by_state.items())],
            "items": {k: [i.to_dict() for i in v] for k, v in self.items.items()},
            "truncated": {k: self.truncated(k) for k in CLASSES},
            "limit": self.limit,
        }

    def to_text(self) -> str:
        lines = [f"{self.total} application(s)"]
        for klass in CLASSES:
            states = ", ".join(f"{s} {n}" for (k, s), n in sorted(self.by_state.items()) if k == klass)
            lines.append(f"{klass}: {self.counts[klass]}" + (f" ({states})" if states else ""))
        return "\n".join(lines)


def summarise(
    impacts: Iterable[Impact],
    *,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
    every: int = 10_000,
) -> ImpactReport:
    """Count a stream of impacts in one pass; memory grows with ``limit``, not the fleet."""
    counts = dict.fromkeys(CLASSES, 0)
    by_state: dict[tuple[str, str], int] = {}
    items: dict[str, list[Impact]] = {k: [] for k in CLASSES}
    total = 0
    for impact in impacts:
        total += 1
        counts[impact.klass] = counts.get(impact.klass, 0) + 1
        key = (impact.klass, impact.state)
        by_state[key] = by_state.get(key, 0) + 1
        listed = items.setdefault(impact.klass, [])
        if limit is None or len(listed) < limit:
            listed.append(impact)
        if progress is not None and total % every == 0:
            progress(total)
    return ImpactReport(total, counts, by_state, {k: tuple(v) for k, v in items.items()}, limit)


# -- guard plans: what is known per (flow, state), what needs the application's data ------


class _Probe(Mapping[str, Any]):
    """Empty application data that notes whether a guard looked at it."""

    touched = False

    def __getitem__(self, key: str) -> Any:
        self.touched = True
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        self.touched = True
        return iter(())

    def __len__(self) -> int:
        self.touched = True
        return 0


@dataclass(frozen=True)
class _Branch:
    leaves: bool
    own: bool  # a deciding role may take it
    role: str  # the role its guards are evaluated for
    refused: tuple[str, ...]  # reasons of guards that fail whatever the data
    dynamic: tuple[tuple[Callable[..., str | None], Any, str], ...]  # (check, args, name): read the data


class _Outcome(NamedTuple):  # a tuple: built once per event per application
    leaves: bool = False  # a deciding role can leave now
    acts: bool = False  # a deciding role can act without leaving
    soft: bool = False  # a leaving branch was refused by data-reading guards only
    reasons: tuple[str, ...] = ()


_NOT_BLOCKED = _Outcome(leaves=True)


@dataclass
class _StatePlan:
    constant: tuple[str, ...] = ()  # blocked reasons, when the data does not matter
    dynamic: bool = False
    fixed: tuple[_Outcome, ...] = ()  # events whose outcome the data does not change
    live: tuple[tuple[_Branch, ...], ...] = ()  # events evaluated per application


class _Planner:
    """Blocked-or-not for one flow at one ``now``, planned per state on first use."""

    def __init__(self, flow: FlowSpec, guards: GuardRegistry, now: datetime) -> None:
        self.flow, self.guards, self.now = flow, guards, now
        self._actors = {role: Actor(f"impact:{role}", role) for role in ROLES}
        self._plans: dict[str, _StatePlan] = {}

    def blocked(self, state: str, data: Mapping[str, Any], uid: str = "") -> tuple[str, ...]:
        """The reasons ``state`` is blocked with ``data`` (empty: not blocked)."""
        plan = self._plans.get(state) or self._plan(state)
        if not plan.dynamic:
            return plan.constant
        frozen = MappingProxyType(data)
        contexts: dict[str, GuardContext] = {}

        def ctx(role: str) -> GuardContext:
            found = contexts.get(role)
            if found is None:
                found = contexts[role] = GuardContext(uid, state, frozen, self.flow, self._actors[role], self.now)
            return found

        return _decide([*plan.fixed, *(_evaluate(branches, ctx) for branches in plan.live)])

    def _plan(self, state: str) -> _StatePlan:
        spec = self.flow.states.get(state)
        if spec is None or spec.final:
            plan = self._plans[state] = _StatePlan()
            return plan
        leaving = [t for t in self.flow.transitions if t.source == state and t.dest != state]
        deciding = APPLICANT_ROLES if any(APPLICANT_ROLES & set(t.actors) for t in leaving) else frozenset(ROLES)
        events = []
        for event in self.flow.events_from(state):
            branches = []
            for t in self.flow.branches(event, state):
                roles = [r for r in t.actors if r in deciding]
                role = roles[0] if roles else t.actors[0]
                refused, dynamic = self._split(state, role, t.guards)
                branches.append(_Branch(t.dest != state, bool(roles), role, refused, dynamic))
            events.append(tuple(branches))
        constant = _constant(events)
        if constant is not None:
            plan = _StatePlan(constant=_decide(constant))
        else:
            live = [e for e in events if any(b.dynamic and not b.refused for b in e)]
            fixed = [_evaluate(e, _no_context) for e in events if e not in live]
            plan = _StatePlan(dynamic=True, fixed=tuple(fixed), live=tuple(live))
        self._plans[state] = plan
        return plan

    def _split(
        self, state: str, role: str, calls: Iterable[Any]
    ) -> tuple[tuple[str, ...], tuple[tuple[Callable[..., str | None], Any, str], ...]]:
        refused: list[str] = []
        dynamic = []
        for call in calls:
            check = self.guards.get(call.name).check
            probe = _Probe()
            ctx = GuardContext("", state, probe, self.flow, self._actors[role], self.now)
            try:
                reason = check(ctx, call.args)
            except Exception:  # a guard that fails on empty data reads it
                probe.touched = True
            if probe.touched:
                dynamic.append((check, call.args, call.describe()))
            elif reason is not None:
                refused.append(reason)
        return tuple(refused), tuple(dynamic)


def _evaluate(branches: tuple[_Branch, ...], ctx: Callable[[str], GuardContext]) -> _Outcome:
    """One event as Engine.evaluate would choose its branch, for the deciding roles."""
    reasons: list[str] = []
    soft = False
    for branch in branches:
        if branch.refused:
            if branch.leaves and branch.own:
                reasons.extend(branch.refused)
            continue
        failed = []
        for check, args, name in branch.dynamic:
            try:
                reason = check(ctx(branch.role), args)
            except Exception as exc:  # one odd application must not stop a fleet report
                reason = f"{name}: {type(exc).__name__}"
            if reason is not None:
                failed.append(reason)
        if not failed:
            return _Outcome(leaves=branch.own and branch.leaves, acts=branch.own and not branch.leaves)
        if branch.leaves and branch.own:
            reasons.extend(failed)
            soft = True
    return _Outcome(soft=soft, reasons=tuple(reasons))


def _decide(outcomes: Iterable[_Outcome]) -> tuple[str, ...]:
    reasons: list[str] = []
    soft = acts = False
    for outcome in outcomes:
        if outcome.leaves:
            return ()
        soft, acts = soft or outcome.soft, acts or outcome.acts
        reasons.extend(r for r in outcome.reasons if r not in reasons)
    if soft and acts:
        return ()
    return tuple(reasons) or (REFUSED,)


def _constant(events: list[tuple[_Branch, ...]]) -> list[_Outcome] | None:
    """Outcomes that hold for any data, or None when the data decides."""
    if not events:
        return [_NOT_BLOCKED]  # final (or unknown) state: nothing to wait for
    live = [[b for b in branches if not b.refused] for branches in events]
    if not any(b.leaves and b.own for branches in live for b in branches):
        return [_Outcome(reasons=b.refused) for branches in events for b in branches if b.leaves and b.own]
    firsts = [branches[0] for branches in live if branches]
    if any(b.leaves and b.own and not b.dynamic for b in firsts):
        return [_NOT_BLOCKED]
    always_acts = any(b.own and not b.leaves and not b.dynamic for b in firsts)
    if always_acts and any(b.leaves and b.own for b in firsts):
        return [_NOT_BLOCKED]  # it passes, or fails on data the applicant can still change
    if not any(b.dynamic for branches in live for b in branches):
        return [_evaluate(branches, _no_context) for branches in events]
    return None


def _no_context(role: str) -> GuardContext:
    raise AssertionError("no guard left to evaluate")  # pragma: no cover


# -- classifying ------------------------------------------------------------------------------


class Classifier:
    """Classifies applications on ``current`` against ``candidate`` at ``now``; everything
    that does not depend on an application is worked out once per state."""

    def __init__(self, current: FlowSpec, candidate: FlowSpec, now: datetime, guards: GuardRegistry = GUARDS) -> None:
        self.current, self.candidate, self.now, self.guards = current, candidate, now, guards
        self._before = _Planner(current, guards, now)
        self._after = _Planner(candidate, guards, now)
        self._static: dict[str, tuple[str | None, tuple[str, ...]]] = {}

    def classify(self, uid: str, state: str, data: Mapping[str, Any]) -> Impact:
        static = self._static.get(state) or self._static.setdefault(state, self._per_state(state))
        klass, changes = static
        if klass is not None:
            return Impact(uid, state, klass, changes)
        reasons = self._after.blocked(state, data, uid)
        if reasons:
            return Impact(uid, state, BLOCKED, reasons)
        reasons = self._before.blocked(state, data, uid)
        if reasons:
            return Impact(uid, state, UNBLOCKED, reasons)
        return Impact(uid, state, CAN_MIGRATE, changes)

    def _per_state(self, state: str) -> tuple[str | None, tuple[str, ...]]:
        """(class, reasons) when the state decides alone, else (None, what changed)."""
        old, new = self.current, self.candidate
        if state not in new.states:
            return STRANDED, (f"state {state!r} is not in the candidate flow",)
        if not new.states[state].final and not any(t.dest != state for t in outgoing(new, state)):
            gone = sorted({t.event for t in outgoing(old, state) if t.dest != state})
            return STRANDED, (f"no event leaves {state!r} in the candidate flow (gone: {', '.join(gone) or '-'})",)
        changes = state_changes(old, new, state, self.guards)
        return (None if changes else UNAFFECTED), changes


_CLASSIFIERS: dict[tuple[str, str, datetime, int], Classifier] = {}


def classifier(current: FlowSpec, candidate: FlowSpec, *, now: datetime, guards: GuardRegistry = GUARDS) -> Classifier:
    """A shared Classifier for these flows and ``now`` (a handful are kept)."""
    key = (current.sha256, candidate.sha256, now, id(guards))
    found = _CLASSIFIERS.get(key)
    if found is None:
        if len(_CLASSIFIERS) >= 16:
            _CLASSIFIERS.clear()
        found = _CLASSIFIERS[key] = Classifier(current, candidate, now, guards)
    return found


def classify(
    uid: str,
    state: str,
    data: Mapping[str, Any],
    *,
    current: FlowSpec,
    candidate: FlowSpec,
    now: datetime,
    guards: GuardRegistry = GUARDS,
) -> Impact:
    """The class of one application on ``current`` if ``candidate`` were its flow."""
    return classifier(current, candidate, now=now, guards=guards).classify(uid, state, data)


def blocked(
    flow: FlowSpec, state: str, data: Mapping[str, Any], *, now: datetime, guards: GuardRegistry = GUARDS
) -> tuple[str, ...]:
    """Why an application in ``state`` with ``data`` is blocked under ``flow`` (empty: it is not)."""
    return classifier(flow, flow, now=now, guards=guards)._after.blocked(state, data)

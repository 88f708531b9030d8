"""Name and graph checks of a loaded flow; the loader has already checked its structure.

Every problem names the file, the key path and what would be valid, and all of them are
reported at once so an admin fixes a flow in one pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from pathlib import Path
from types import MappingProxyType
from typing import Any

from marshmallow import ValidationError

from gzsb.errors import FlowError
from gzsb.workflow.engine import MIGRATE_EVENT
from gzsb.workflow.loader import flatten_errors, load_flow, load_flow_file
from gzsb.workflow.needs import Needs
from gzsb.workflow.registry import (
    GUARDS,
    PAGES,
    SMS_TEMPLATES,
    STEPS,
    FlowRegistries,
    GuardRegistry,
    Registry,
    StepRegistry,
    global_registries,
)
from gzsb.workflow.spec import FlowSpec, TransitionSpec


def _thaw(value: Any) -> Any:
    """The loader freezes guard arguments; marshmallow wants plain dicts and lists."""
    if isinstance(value, (dict, MappingProxyType)):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _known(names: Any) -> str:
    return ", ".join(sorted(names)) or "(none)"


def validate_flow(
    flow: FlowSpec,
    *,
    guards: GuardRegistry = GUARDS,
    steps: StepRegistry = STEPS,
    pages: Registry[str] = PAGES,
    sms: Registry[str] = SMS_TEMPLATES,
    points: Collection[str] | None = None,
) -> list[str]:
    """``points``: the 确认点 codes a window's ``by_point`` may name (None: not checked)."""
    problems: list[str] = []

    def problem(path: str, message: str) -> None:
        problems.append(f"{flow.source}: {path}: {message}")

    states = flow.states
    state_names = _known(states)
    if flow.initial not in states:
        problem("initial", f"unknown state {flow.initial!r}; known: {state_names}")

    stage_keys = [s.key for s in flow.stages]
    for position, key in enumerate(stage_keys):
        if key in stage_keys[:position]:
            problem(f"stages[{position}].key", f"stage {key!r} is declared twice")
    for name, state in states.items():
        if state.page not in pages:
            problem(f"states.{name}.page", pages.unknown_message(state.page))
        if flow.stages and state.stage is not None and state.stage not in stage_keys:
            problem(f"states.{name}.stage", f"unknown stage {state.stage!r}; known: {_known(stage_keys)}")
        if flow.stages and state.stage is None:
            problem(f"states.{name}", f"no stage: the process page needs one of {_known(stage_keys)}")
    if not any(s.final for s in states.values()):
        problem("states", "no state is final: mark the end of the process with final: true")

    for name, window in flow.windows.items():
        if window.closes <= window.opens:
            problem(f"windows.{name}.closes", "must be after opens")
        for path, group in window.groups():
            if group.closes <= group.opens:
                problem(
                    f"windows.{name}.{path}",
                    f"closes ({group.closes.isoformat()}) must be after opens ({group.opens.isoformat()}); "
                    "what a group leaves out is the window's own",
                )
        if points is not None:
            for code in window.by_point:
                if code not in points:
                    problem(f"windows.{name}.by_point.{code}", f"unknown 确认点 {code!r}; known: {_known(points)}")

    for t in flow.transitions:
        where = f"transitions[{t.index}]"
        if t.event == MIGRATE_EVENT:
            problem(
                f"{where}.event",
                f"{MIGRATE_EVENT!r} is reserved for the engine (moving an application to another flow version); "
                "choose another name",
            )
        for key, target in (("from", t.source), ("to", t.dest)):
            if target not in states:
                problem(f"{where}.{key}", f"unknown state {target!r}; known: {state_names}")
        if t.step is not None and t.step not in steps:
            problem(f"{where}.step", steps.unknown_message(t.step))
        for g, call in enumerate(t.guards):
            _check_guard(flow, guards, call, f"{where}.guards[{g}]", problem)

    _check_branches(flow, problem)
    _check_graph(flow, problem)

    for i, timer in enumerate(flow.timers):
        if timer.state not in states:
            problem(f"timers[{i}].in", f"unknown state {timer.state!r}; known: {state_names}")
            continue
        leaving = [t for t in flow.branches(timer.event, timer.state) if t.dest != timer.state]
        if not leaving:
            events = _known(e for e in flow.events_from(timer.state))
            problem(
                f"timers[{i}].event",
                f"{timer.event!r} does not leave state {timer.state!r}; events from there: {events}",
            )
        elif not any("system" in t.actors for t in leaving):
            problem(f"timers[{i}].event", f"{timer.event!r} must list actor 'system' (timers fire as the system)")

    for notified, template in flow.notify.items():
        if notified not in states:
            problem(f"notify.{notified}", f"unknown state {notified!r}; known: {state_names}")
        if template not in sms:
            problem(f"notify.{notified}", sms.unknown_message(template))
    _check_materials(flow, problem)
    return problems


def _check_materials(flow: FlowSpec, problem: Any) -> None:
    """Every document a category (or rule) names is declared under materials.documents."""
    m = flow.materials
    known = _known(m.documents)
    lists = [(f"materials.categories.{c}", keys) for c, keys in m.categories.items()]
    lists += [("materials.no_registry", m.no_registry), ("materials.correction", m.correction)]
    lists += [("materials.always", m.always)]
    for path, keys in lists:
        for i, key in enumerate(keys):
            if key not in m.documents:
                problem(f"{path}[{i}]", f"unknown document {key!r}; known: {known}")


def _check_guard(flow: FlowSpec, guards: GuardRegistry, call: Any, path: str, problem: Any) -> None:
    if call.name not in guards:
        problem(path, guards.unknown_message(call.name))
        return
    entry = guards.get(call.name)
    if entry.args is None:
        if call.args is not None:
            problem(path, f"guard {call.name!r} takes no arguments; write just {call.name}")
        return
    if call.args is None:
        problem(path, f"guard {call.name!r} needs arguments; write {{{call.name}: …}}")
        return
    try:
        value = entry.args.deserialize(_thaw(call.args))
    except ValidationError as exc:
        for line in flatten_errors(exc.messages, None, f"{path}.{call.name}"):
            problem(line.split(": ", 1)[0], line.split(": ", 1)[1])
        return
    if entry.refers_to == "windows" and value not in flow.windows:
        problem(f"{path}.{call.name}", f"unknown window {value!r}; known: {_known(flow.windows)}")


def _check_branches(flow: FlowSpec, problem: Any) -> None:
    """Branches of one (event, from) are tried in order: each must be tellable apart."""
    seen: dict[tuple[str, str], list[TransitionSpec]] = {}
    for t in flow.transitions:
        seen.setdefault((t.event, t.source), []).append(t)
    for branches in seen.values():
        for position, branch in enumerate(branches):
            where = f"transitions[{branch.index}]"
            for earlier in branches[:position]:
                if earlier.dest == branch.dest and earlier.guards == branch.guards:
                    problem(
                        where,
                        f"duplicates transitions[{earlier.index}] ({branch.event}: {branch.source} → {branch.dest})",
                    )
                    break
                if not earlier.guards:
                    problem(
                        where,
                        f"branch can never be chosen: the earlier branch transitions[{earlier.index}] of "
                        f"{branch.event!r} from {branch.source!r} has no guards, so it always wins",
                    )
                    break
                if earlier.dest == branch.dest:
                    problem(
                        where,
                        f"branches transitions[{earlier.index}] and transitions[{branch.index}] of {branch.event!r} "
                        f"both lead to {branch.dest!r}: the history could not tell them apart; merge them",
                    )
                    break


def _check_graph(flow: FlowSpec, problem: Any) -> None:
    states = flow.states
    if flow.initial not in states:
        return
    edges: dict[str, set[str]] = {name: set() for name in states}
    for t in flow.transitions:
        if t.source in states and t.dest in states:
            edges[t.source].add(t.dest)
    reachable = _closure({flow.initial}, edges)
    for name in states:
        if name not in reachable:
            problem(f"states.{name}", f"unreachable from the initial state {flow.initial!r}")
    reverse: dict[str, set[str]] = {name: set() for name in states}
    for source, dests in edges.items():
        for dest in dests:
            reverse[dest].add(source)
    can_finish = _closure({n for n, s in states.items() if s.final}, reverse)
    for name, state in states.items():
        if state.final or name not in reachable:
            continue
        if not (edges[name] - {name}):
            problem(f"states.{name}", "dead end: not final and no transition leaves it; add one or mark it final: true")
        elif name not in can_finish:
            problem(f"states.{name}", "trap: no final state can be reached from it")


def _closure(start: set[str], edges: dict[str, set[str]]) -> set[str]:
    seen, queue = set(start), deque(start)
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


# ------------------------------------------------------------------ names areas rely on


def check_needs(flow: FlowSpec, needs: Needs) -> list[str]:
    """A flow lacking a name that some area's code relies on would break that area at run time."""
    return [f"{flow.source}: {m.path}: {m.message}" for m in needs.missing(flow)]


def validate_with(flow: FlowSpec, registries: FlowRegistries, points: Collection[str] | None = None) -> list[str]:
    """Every problem of a loaded flow against the registries its caller built (and the
    确认点 codes, when the caller can read them)."""
    problems = validate_flow(
        flow,
        guards=registries.guards,
        steps=registries.steps,
        pages=registries.pages,
        sms=registries.sms,
        points=points,
    )
    return problems + check_needs(flow, registries.needs)


def _checked(flow: FlowSpec, registries: FlowRegistries | None, points: Collection[str] | None) -> FlowSpec:
    problems = validate_with(flow, registries if registries is not None else global_registries(), points)
    if problems:
        raise FlowError(problems)
    return flow


def check_flow(
    text: str,
    source: str = "<flow>",
    registries: FlowRegistries | None = None,
    points: Collection[str] | None = None,
) -> FlowSpec:
    """Load and validate; raises FlowError listing every problem.

    ``registries``: what names are checked against (``gzsb.bootstrap.registries()`` builds
    the product's); None uses the process-wide ones as far as they have been filled.
    ``points``: the known 确认点 codes for ``by_point`` (None: not checked).
    """
    return _checked(load_flow(text, source), registries, points)


def check_flow_file(
    path: str | Path, registries: FlowRegistries | None = None, points: Collection[str] | None = None
) -> FlowSpec:
    return _checked(load_flow_file(path), registries, points)

"""What differs for one state between two flows: the "unaffected" test of the impact
classes (``gzsb.workflow.impact``), worked out once per state, never per application."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gzsb.workflow.registry import GuardRegistry
from gzsb.workflow.spec import FlowSpec


def outgoing(flow: FlowSpec, state: str) -> list[Any]:
    return [t for event in flow.events_from(state) for t in flow.branches(event, state)]


def state_changes(old: FlowSpec, new: FlowSpec, state: str, guards: GuardRegistry) -> tuple[str, ...]:
    """What differs for ``state`` (empty: the same in both flows, see ``gzsb.workflow.impact``)."""
    changes: list[str] = []
    if old.states.get(state) != new.states.get(state):
        changes.append(f"state {state!r} changed")

    def shape(flow: FlowSpec) -> dict[str, list[tuple[Any, ...]]]:
        return {
            e: [(t.dest, t.actors, t.label, t.step, t.guards) for t in flow.branches(e, state)]
            for e in flow.events_from(state)
        }

    before, after = shape(old), shape(new)
    events = [e for e in dict.fromkeys([*before, *after]) if before.get(e) != after.get(e)]
    if events:
        changes.append(f"transitions changed: {', '.join(events)}")
    if old.timers_for(state) != new.timers_for(state):
        changes.append("timers changed")
    moves = outgoing(old, state) + outgoing(new, state)
    referred = {ref for t in moves for g in t.guards if (ref := _referred(guards, g)) is not None}
    for section, key in sorted(referred):
        if _section(old, section).get(key) != _section(new, section).get(key):
            changes.append(f"{section[:-1] if section.endswith('s') else section} {key} changed")
    if any(t.step or t.guards for t in moves):
        settings = [
            k for k in dict.fromkeys([*old.settings, *new.settings]) if old.settings.get(k) != new.settings.get(k)
        ]
        if settings:
            changes.append(f"settings changed: {', '.join(settings)}")
        # Steps and guards also read these sections (上传审核's documents, who books 现场确认).
        changed = [name for name in ("materials", "onsite") if getattr(old, name) != getattr(new, name)]
        if changed:
            changes.append(f"{' and '.join(changed)} changed")
    return tuple(changes)


def _referred(guards: GuardRegistry, call: Any) -> tuple[str, str] | None:
    """(section, key) a guard's argument names, e.g. ("windows", "registration")."""
    if call.name not in guards:
        return None
    section = guards.get(call.name).refers_to
    return (section, str(call.args)) if section and isinstance(call.args, str) else None


def _section(flow: FlowSpec, section: str) -> Mapping[str, Any]:
    value = getattr(flow, section, None)
    return value if isinstance(value, Mapping) else {}

"""What-if replay: would a recorded history still be legal under another flow, guards included?

For each event: is the move in the other flow (from, event, to, role), which guards the
other flow checks on that branch that were not checked when it happened, and what those
say when re-evaluated on the application's data as it was before the event (rebuilt,
redacted, from the events' recorded changes). A guard that reads a field the history keeps
only as a keyed hash, or does not hold, cannot be re-evaluated and says which field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gzsb.workflow.engine import Actor, GuardContext
from gzsb.workflow.history import MIGRATE_EVENT, EventRow, apply_changes
from gzsb.workflow.machine import MACHINES
from gzsb.workflow.registry import GUARDS, GuardRegistry
from gzsb.workflow.spec import FlowSpec

log = logging.getLogger(__name__)

REDACTED_PREFIX = "hmac-sha256:"


@dataclass(frozen=True)
class GuardVerdict:
    guard: str  # as the flow writes it, e.g. xueji_found or window_open(registration)
    outcome: str  # "passes", "refused" or "unknown"
    reason: str = ""  # the guard's reason when refused; the missing field when unknown

    def describe(self) -> str:
        if self.outcome == "refused":
            return f"{self.guard}: would be refused: {self.reason}"
        if self.outcome == "unknown":
            return f"{self.guard}: cannot be re-evaluated: needs {self.reason}"
        return f"{self.guard}: passes"


@dataclass(frozen=True)
class EventWhatIf:
    seq: int
    event: str
    from_state: str
    to_state: str
    legal: bool  # the move (from, event, to, role) exists in the other flow
    problem: str  # why not, when not legal
    new_guards: tuple[GuardVerdict, ...]  # guards the other flow checks that were not checked then

    @property
    def refused(self) -> bool:
        return any(g.outcome == "refused" for g in self.new_guards)

    def describe(self) -> str:
        head = f"seq {self.seq} {self.event} {self.from_state} → {self.to_state}: "
        if not self.legal:
            return head + f"not legal: {self.problem}"
        if not self.new_guards:
            return head + "legal, no new guards"
        return head + "legal; new guards: " + "; ".join(g.describe() for g in self.new_guards)


@dataclass(frozen=True)
class WhatIf:
    application: str
    flow: str  # sha256 of the other flow
    events: tuple[EventWhatIf, ...]

    @property
    def first_problem(self) -> EventWhatIf | None:
        return next((e for e in self.events if not e.legal or e.refused), None)


class _Tracking(Mapping[str, Any]):
    """The redacted data a guard reads; remembers which fields it asked for and were missing
    or redacted, so "cannot be re-evaluated" can name them."""

    def __init__(self, data: Mapping[str, Any], path: str = "", needs: list[str] | None = None) -> None:
        self._data, self._path = data, path
        self.needs: list[str] = [] if needs is None else needs

    def _wrap(self, key: str, value: Any) -> Any:
        where = f"{self._path}{key}"
        if isinstance(value, str) and value.startswith(REDACTED_PREFIX):
            self.needs.append(f"{where} (kept only as a keyed hash)")
        if isinstance(value, Mapping):
            return _Tracking(value, f"{where}.", self.needs)
        return value

    def __getitem__(self, key: str) -> Any:
        if key not in self._data:
            self.needs.append(f"{self._path}{key} (not recorded)")
            raise KeyError(key)
        return self._wrap(key, self._data[key])

    def __contains__(self, key: object) -> bool:
        found = key in self._data
        if not found:
            self.needs.append(f"{self._path}{key} (not recorded)")
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def _recorded_guards(row: EventRow) -> set[str]:
    try:
        evaluated = json.loads(row.guards)
        return {name for _dest, results in evaluated for name, _passed in results}
    except (ValueError, TypeError):
        return set()


def _parse_at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def whatif(
    application_uid: str, other: FlowSpec, rows: Iterable[EventRow], *, guards: GuardRegistry = GUARDS
) -> WhatIf:
    """Replay ``rows`` under ``other``, reporting each event (see the module doc)."""
    machine = MACHINES.get(other)
    snapshot: dict[str, Any] = {}
    out: list[EventWhatIf] = []
    for row in rows:
        before = dict(snapshot)
        if row.changes:
            apply_changes(snapshot, row.changes)
        if row.event == MIGRATE_EVENT:
            out.append(EventWhatIf(row.seq, row.event, row.from_state, row.to_state, True, "", ()))
            continue
        spec = machine.legal(row.from_state, row.event, row.to_state)
        if spec is None:
            problem = f"{row.event!r} does not lead from {row.from_state!r} to {row.to_state!r}"
            out.append(EventWhatIf(row.seq, row.event, row.from_state, row.to_state, False, problem, ()))
            continue
        if row.role not in spec.actors:
            problem = f"role {row.role!r} may not fire {row.event!r} (allowed: {', '.join(spec.actors)})"
            out.append(EventWhatIf(row.seq, row.event, row.from_state, row.to_state, False, problem, ()))
            continue
        checked = _recorded_guards(row)
        verdicts = []
        for call in spec.guards:
            name = call.describe()
            if name in checked:
                continue
            verdicts.append(_evaluate(guards, call, application_uid, row, other, before))
        out.append(EventWhatIf(row.seq, row.event, row.from_state, row.to_state, True, "", tuple(verdicts)))
    return WhatIf(application_uid, other.sha256, tuple(out))


def _evaluate(
    guards: GuardRegistry, call: Any, uid: str, row: EventRow, flow: FlowSpec, data: Mapping[str, Any]
) -> GuardVerdict:
    name = call.describe()
    tracking = _Tracking(data)
    ctx = GuardContext(uid, row.from_state, tracking, flow, Actor(row.actor, row.role), _parse_at(row.at))
    try:
        reason = guards.get(call.name).check(ctx, call.args)
    except Exception as exc:  # a guard fed redacted data may fail in any way; say what it needed
        needs = ", ".join(dict.fromkeys(tracking.needs)) or f"data it could not read ({type(exc).__name__})"
        return GuardVerdict(name, "unknown", needs)
    redacted = [n for n in tracking.needs if "keyed hash" in n]
    if redacted:
        return GuardVerdict(name, "unknown", ", ".join(dict.fromkeys(redacted)))
    if reason is None:
        return GuardVerdict(name, "passes")
    return GuardVerdict(name, "refused", reason)

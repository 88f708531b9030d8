"""Replaying a stored history: the chain, each move under the flow, the recorded guard
results, migrations between flow versions, and the application's data rebuilt from the
events' changes. Nothing here touches the database: callers stream rows in.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gzsb.errors import ServiceError
from gzsb.workflow.history import (
    LEGACY_FORMAT,
    MIGRATE_EVENT,
    MIGRATE_ROLE,
    EventRow,
    Verdict,
    apply_changes,
    event_hash,
    first_difference,
    genesis_hash,
)
from gzsb.workflow.machine import MACHINES, FlowMachine
from gzsb.workflow.spec import FlowSpec

# (flow, event, from, to, recorded guards) → problem: the same few recorded guard results
# recur across a whole fleet, so each is decoded and checked once per verify run.
_GUARDS_CHECKED: dict[tuple[str, str, str, str, str], str] = {}
_GUARDS_CACHE_MAX = 65536


def _guards_consistent(machine: FlowMachine, event: str, source: str, dest: str, guards_text: str) -> str:
    key = (machine.flow.sha256, event, source, dest, guards_text)
    found = _GUARDS_CHECKED.get(key)
    if found is None:
        if len(_GUARDS_CHECKED) >= _GUARDS_CACHE_MAX:
            _GUARDS_CHECKED.clear()
        found = _GUARDS_CHECKED[key] = _guards_problem(machine, event, source, dest, guards_text)
    return found


def _guards_problem(machine: FlowMachine, event: str, source: str, dest: str, guards_text: str) -> str:
    """The recorded guard results must make the recorded branch the first that passes."""
    try:
        evaluated = json.loads(guards_text)
    except ValueError:
        return "guard results are not JSON"
    branches = machine.flow.branches(event, source)
    if not isinstance(evaluated, list) or not evaluated:
        return "no guard results recorded"
    for position, item in enumerate(evaluated):
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
            return "guard results are malformed"
        branch_dest, results = item
        passed = all(bool(r[1]) for r in results)
        last = position == len(evaluated) - 1
        if last and (branch_dest != dest or not passed):
            return f"recorded guards do not let branch to {dest!r} win"
        if not last and passed:
            return f"an earlier branch (to {branch_dest!r}) passed its guards, so {dest!r} could not win"
    expected = [b.dest for b in branches][: len(evaluated)]
    if [item[0] for item in evaluated] != expected[: len(evaluated)]:
        return "guard results do not follow the flow's branch order"
    return ""


def replay(
    application_uid: str,
    flow: FlowSpec,
    rows: Iterable[EventRow],
    *,
    head: str | None = None,
    state: str | None = None,
    check_chain: bool = True,
    check_guards: bool = True,
    flows: Callable[[str], FlowSpec] | None = None,
    data: Mapping[str, Any] | None = None,
) -> Verdict:
    """Rebuild the state from ``rows`` under ``flow``; the first illegal or broken event
    is named. ``head``/``state`` are what the application row claims at the end, ``data``
    its current data as ``redacted_snapshot`` gives it (checked against the rebuilt one).

    A ``migrate_flow`` event switches the replay to its target flow, which ``flows`` looks
    up by SHA-256; without ``flows`` such an event fails the replay."""
    machine = MACHINES.get(flow)
    verdict = Verdict(application_uid)
    current = flow.initial
    prev = genesis_hash(application_uid, flow.sha256)
    # hash → seq of every event seen, so a head that stops short names the first extra event.
    seen: dict[str, int] = {prev: 0}
    snapshot: dict[str, Any] = {}
    set_at: dict[str, int] = {}
    expected_seq = 1
    for row in rows:
        seq = row.seq
        if seq != expected_seq:
            return verdict.fail(expected_seq, f"event seq {expected_seq} is missing (found seq {seq})")
        if check_chain:
            if row.prev_hash != prev:
                return verdict.fail(seq, "prev hash does not match the previous event (removed, inserted or reordered)")
            if not row.changes:
                return verdict.fail(
                    seq, f"legacy {LEGACY_FORMAT} event recorded before data binding: not verifiable; "
                    "re-create the database (flask db upgrade; flask demo seed)",
                )  # fmt: skip
            recomputed = event_hash(
                row.prev_hash,
                application_uid,
                seq,
                row.event,
                row.from_state,
                row.to_state,
                row.actor,
                row.role,
                row.guards,
                row.payload,
                row.flow_sha256,
                row.at,
                row.changes,
            )
            if recomputed != row.hash:
                return verdict.fail(seq, "hash does not match the event's content (edited)")
            # A migration is recorded under its target flow: _migration checks that.
            if row.flow_sha256 != flow.sha256 and row.event != MIGRATE_EVENT:
                return verdict.fail(seq, f"recorded under flow {row.flow_sha256[:12]}, not {flow.sha256[:12]}")
        if row.from_state != current:
            return verdict.fail(seq, f"starts from {row.from_state!r} but the application was in {current!r}")
        if row.event == MIGRATE_EVENT:
            target, problem = _migration(flow, row, flows, check_chain=check_chain, check_guards=check_guards)
            if target is None:
                return verdict.fail(seq, problem)
            flow, machine = target, MACHINES.get(target)
            current, prev = row.to_state, row.hash
            seen.setdefault(prev, seq)
            expected_seq += 1
            continue
        spec = machine.legal(current, row.event, row.to_state)
        if spec is None:
            return verdict.fail(seq, f"{row.event!r} does not lead from {current!r} to {row.to_state!r} in this flow")
        if row.role not in spec.actors:
            return verdict.fail(
                seq, f"role {row.role!r} may not fire {row.event!r} (allowed: {', '.join(spec.actors)})"
            )
        if check_guards:
            problem = _guards_consistent(machine, row.event, current, row.to_state, row.guards)
            if problem:
                return verdict.fail(seq, problem)
        current = row.to_state
        prev = row.hash
        seen.setdefault(prev, seq)
        if data is not None and row.changes != "{}":
            try:
                for key in apply_changes(snapshot, row.changes):
                    set_at[key] = seq
            except (ValueError, AttributeError, TypeError):
                return verdict.fail(seq, "the recorded data changes are malformed")
        expected_seq += 1
    verdict.events = expected_seq - 1
    verdict.state = current
    verdict.flow = flow.sha256
    if head is not None and check_chain and head != prev:
        if head in seen:
            # The head names an earlier event: the ones after it were appended behind the
            # application's back (or the head was rolled back).
            extra = seen[head] + 1
            return verdict.fail(extra, f"event seq {extra} comes after the recorded head (not a recorded transition)")
        return verdict.fail(expected_seq, f"history ends before the recorded head: event seq {expected_seq} is missing")
    if state is not None and state != current:
        return verdict.fail(
            max(verdict.events, 1), f"application row says state {state!r} but its history leads to {current!r}"
        )
    differs = first_difference(data, snapshot) if data is not None else None
    if differs is not None:
        return verdict.fail(
            set_at.get(differs, max(verdict.events, 1)),
            f"application data {differs!r} differs from what its history recorded (edited outside the flow)",
        )
    return verdict


def migration_payload(row: EventRow) -> dict[str, Any] | None:
    try:
        payload = json.loads(row.payload)
    except ValueError:
        return None
    ok = (
        isinstance(payload, dict)
        and isinstance(payload.get("from_flow"), str)
        and isinstance(payload.get("to_flow"), str)
        and isinstance(payload.get("mapping"), dict)
    )
    return payload if ok else None


def _migration(
    flow: FlowSpec,
    row: EventRow,
    flows: Callable[[str], FlowSpec] | None,
    *,
    check_chain: bool,
    check_guards: bool,
) -> tuple[FlowSpec | None, str]:
    """The flow a ``migrate_flow`` event moves to, or None and what is wrong with it."""
    payload = migration_payload(row)
    if payload is None:
        return None, "migration payload needs from_flow, to_flow and mapping"
    to_sha = payload["to_flow"]
    # Like the flow field of other events, the flow bindings are part of the chain check
    # (a what-if replay under another flow switches both off).
    if check_chain and payload["from_flow"] != flow.sha256:
        return None, f"migration from flow {payload['from_flow'][:12]}, but the application ran on {flow.sha256[:12]}"
    if check_chain and row.flow_sha256 != to_sha:
        return None, f"migration recorded under flow {row.flow_sha256[:12]}, not its target {to_sha[:12]}"
    if row.role != MIGRATE_ROLE:
        return None, f"role {row.role!r} may not fire {MIGRATE_EVENT!r} (allowed: {MIGRATE_ROLE})"
    if check_guards and row.guards != "[]":
        return None, "a migration records no guard results"
    if flows is None:
        return None, f"migration to another flow version: replay needs flow {to_sha[:12]}"
    try:
        target = flows(to_sha)
    except (ServiceError, LookupError):
        return None, f"migration to flow {to_sha[:12]}, which is not available"
    if target.sha256 != to_sha:
        return None, f"the flow given for {to_sha[:12]} has another SHA-256"
    if row.to_state not in target.states:
        return None, f"migration to state {row.to_state!r}, which flow {to_sha[:12]} does not have"
    expected = payload["mapping"].get(row.from_state, row.from_state)
    if row.to_state != expected:
        return None, f"migration moved {row.from_state!r} to {row.to_state!r}, but its mapping says {expected!r}"
    return target, ""


def replay_application(
    application_uid: str,
    flow: FlowSpec,
    rows: Iterable[EventRow],
    *,
    flows: Callable[[str], FlowSpec],
    head: str | None = None,
    state: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> Verdict:
    """Replay a stored history whose application runs on ``flow`` now.

    A migrated history starts under an earlier version: the first event names it (its own
    flow, or a migration's source), and the replay must end under ``flow``, so a flow
    version switched behind the history's back is caught."""
    iterator = iter(rows)
    first = next(iterator, None)
    start = flow
    if first is not None:
        payload = migration_payload(first) if first.event == MIGRATE_EVENT else None
        start_sha = payload["from_flow"] if payload is not None else first.flow_sha256
        if start_sha != flow.sha256:
            # An unknown start is left to the chain check, which names the event.
            with contextlib.suppress(ServiceError, LookupError):
                start = flows(start_sha)
        iterator = itertools.chain((first,), iterator)
    verdict = replay(application_uid, start, iterator, head=head, state=state, flows=flows, data=data)
    if verdict.ok and verdict.flow != flow.sha256:
        return verdict.fail(
            max(verdict.events, 1),
            f"application row says flow {flow.sha256[:12]} but its history leads to flow {verdict.flow[:12]}",
        )
    return verdict

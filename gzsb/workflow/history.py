"""The hash-chained history: building events, verifying and replaying them, exports.

An event's hash is SHA-256 over its previous hash and a canonical JSON array of its
fields, so editing, deleting, inserting or reordering any event breaks the chain at
that event. The chain starts from a genesis hash bound to the application and its
flow version; a ``migrate_flow`` event moves the rest of the chain onto another version.
Each event also records the top-level keys of the application's data its step changed,
with their new values redacted (``changes``, covered by the hash), so a replay rebuilds
the redacted data and an edit of the data itself is caught. The exact encoding is in
docs/audit-format.md. Nothing here touches the database: callers stream rows in.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gzsb.errors import ServiceError
from gzsb.workflow.machine import MACHINES, FlowMachine
from gzsb.workflow.spec import FlowSpec

EXPORT_FORMAT = "gzsb-history/2"
LEGACY_FORMAT = "gzsb-history/1"
# Leaf data of the transparency log: a domain line, then one canonical JSON array.
LEAF_EVENT = "gzsb-log/1 event\n"
LEAF_PUBLISH = "gzsb-log/1 publish\n"
HEADER_KEYS = frozenset({"format", "application", "state", "head", "flow", "flow_yaml", "flow_source"})
# Optional header key: {sha256: yaml text} of the earlier flow versions a migrated history ran under.
HEADER_FLOWS = "flows"
# The engine's reserved event that moves an application to another flow version; no flow
# may declare it (validate.py), and only an admin records it.
MIGRATE_EVENT = "migrate_flow"
MIGRATE_ROLE = "admin"
# Event fields in hashing and export order.
FIELDS = ("seq", "event", "from", "to", "actor", "role", "guards", "payload", "changes", "flow", "at", "prev", "hash")


def canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def utc_text(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def genesis_hash(application_uid: str, flow_sha256: str) -> str:
    return hashlib.sha256(f"genesis|{application_uid}|{flow_sha256}".encode()).hexdigest()


def event_hash(
    prev: str,
    application_uid: str,
    seq: int,
    event: str,
    from_state: str,
    to_state: str,
    actor: str,
    role: str,
    guards: str,
    payload: str,
    flow_sha256: str,
    at: str,
    changes: str = "",
) -> str:
    """gzsb-history/2 when ``changes`` (canonical JSON) is given; "" is the legacy /1 encoding."""
    # guards, payload and changes are already canonical JSON text; splicing them in keeps
    # the whole body valid, unambiguous JSON without decoding them again.
    head = canonical([application_uid, seq, event, from_state, to_state, actor, role, flow_sha256, at])
    tail = f",{changes}]" if changes else "]"
    body = f"{prev}|{head[:-1]},{guards},{payload}{tail}"
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def event_leaf(application_uid: str, seq: int, hash_hex: str) -> bytes:
    """The log's leaf data of a history event (its hash already covers everything else)."""
    return (LEAF_EVENT + canonical([application_uid, seq, hash_hex]) + "\n").encode("utf-8")


def publish_leaf(flow: str, sha256: str, by: str, at: str) -> bytes:
    """The log's leaf data of a flow publish: name, SHA-256 of the YAML text, who, when (UTC)."""
    return (LEAF_PUBLISH + canonical([flow, sha256, by, at]) + "\n").encode("utf-8")


def data_changes(before: Mapping[str, Any], after: Mapping[str, Any], redactor: Redactor) -> str:
    """The ``changes`` of an event: top-level data keys whose value changed, new values redacted."""
    changed = {k: v for k, v in after.items() if k not in before or canonical(before[k]) != canonical(v)}
    unset = sorted(k for k in before if k not in after)
    out: dict[str, Any] = {}
    if changed:
        out["set"] = redactor.redact(changed)
    if unset:
        out["unset"] = unset
    return canonical(out)


def apply_changes(snapshot: dict[str, Any], changes: str) -> list[str]:
    """Apply an event's ``changes`` to a redacted snapshot {key: value}; returns the keys it touched."""
    if changes == "{}":
        return []
    parsed = json.loads(changes)
    touched = []
    for key, value in parsed.get("set", {}).items():
        snapshot[key] = value
        touched.append(key)
    for key in parsed.get("unset", ()):
        snapshot.pop(key, None)
        touched.append(key)
    return touched


def redacted_snapshot(data: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    """The current data as a replay rebuilds it: redacted like the events' changes."""
    return redactor.redact(data)


def first_difference(data: Mapping[str, Any], snapshot: Mapping[str, Any]) -> str | None:
    """The first top-level key whose value differs (as canonical JSON), or None."""
    if canonical(data) == canonical(snapshot):
        return None
    return min(k for k in data.keys() | snapshot.keys() if k not in data or k not in snapshot
               or canonical(data[k]) != canonical(snapshot[k]))  # fmt: skip


class Redactor:
    """Replaces sensitive payload values by keyed hashes: equal values stay comparable
    for an auditor holding the key, and the history holds no personal data."""

    def __init__(self, key: str, sensitive: Iterable[str] = ()) -> None:
        self._key = key.encode("utf-8")
        self.sensitive = frozenset(sensitive)

    def hash_value(self, value: Any) -> str:
        digest = hmac.new(self._key, canonical(value).encode("utf-8"), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{digest}"

    def redact(self, payload: Mapping[str, Any], extra_sensitive: Iterable[str] = ()) -> dict[str, Any]:
        sensitive = self.sensitive | frozenset(extra_sensitive)
        out: dict[str, Any] = {}
        for key, value in payload.items():
            if key in sensitive:
                out[key] = self.hash_value(value)
            elif isinstance(value, Mapping):
                out[key] = self.redact(value, extra_sensitive)
            else:
                out[key] = value
        return out


@dataclass(frozen=True)
class EventRow:
    """One history event as stored."""

    seq: int
    event: str
    from_state: str
    to_state: str
    actor: str
    role: str
    guards: str
    payload: str
    flow_sha256: str
    at: str
    prev_hash: str
    hash: str
    changes: str = ""  # "" only for legacy gzsb-history/1 events

    def as_export(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event": self.event,
            "from": self.from_state,
            "to": self.to_state,
            "actor": self.actor,
            "role": self.role,
            "guards": json.loads(self.guards),
            "payload": json.loads(self.payload),
            "changes": json.loads(self.changes) if self.changes else None,
            "flow": self.flow_sha256,
            "at": self.at,
            "prev": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_export(cls, obj: Mapping[str, Any]) -> EventRow:
        return cls(
            seq=obj["seq"],
            event=obj["event"],
            from_state=obj["from"],
            to_state=obj["to"],
            actor=obj["actor"],
            role=obj["role"],
            guards=canonical(obj["guards"]),
            payload=canonical(obj["payload"]),
            flow_sha256=obj["flow"],
            at=obj["at"],
            prev_hash=obj["prev"],
            hash=obj["hash"],
            changes="" if obj["changes"] is None else canonical(obj["changes"]),
        )


@dataclass
class Verdict:
    application: str
    ok: bool = True
    bad_seq: int | None = None
    problem: str = ""
    events: int = 0
    state: str = ""
    notes: list[str] = field(default_factory=list)
    # SHA-256 of the flow the replay ended under (differs from the start after a migration).
    flow: str = ""

    def fail(self, seq: int, problem: str) -> Verdict:
        if self.ok:
            self.ok, self.bad_seq, self.problem = False, seq, problem
        return self

    def describe(self) -> str:
        if self.ok:
            return f"application {self.application}: ok ({self.events} events, state {self.state})"
        return f"application {self.application}: FAILED at seq {self.bad_seq}: {self.problem}"


def _guards_consistent(machine: FlowMachine, event: str, source: str, dest: str, guards_text: str) -> str:
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
    key = first_difference(data, snapshot) if data is not None else None
    if key is not None:
        return verdict.fail(
            set_at.get(key, max(verdict.events, 1)),
            f"application data {key!r} differs from what its history recorded (edited outside the flow)",
        )
    return verdict


def _migration_payload(row: EventRow) -> dict[str, Any] | None:
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
    payload = _migration_payload(row)
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


def flow_shas(rows: Iterable[EventRow]) -> list[str]:
    """Every flow a history names (events' flows and migrations' sources), first seen first."""
    found: dict[str, None] = {}
    for row in rows:
        if row.event == MIGRATE_EVENT:
            payload = _migration_payload(row)
            if payload is not None:
                found.setdefault(payload["from_flow"])
        found.setdefault(row.flow_sha256)
    return list(found)


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
        payload = _migration_payload(first) if first.event == MIGRATE_EVENT else None
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


def export_lines(
    application_uid: str,
    flow: FlowSpec,
    state: str,
    head: str,
    rows: Iterable[EventRow],
    *,
    flows: Callable[[str], FlowSpec] | None = None,
) -> Iterator[str]:
    """JSON lines: a header carrying the flow text, then one event a line, each canonical.

    ``flow`` is the application's flow now; with ``flows`` the header also carries the
    earlier versions a migrated history ran under (``flows``: {sha256: text}), only when
    there are any, so exports of unmigrated histories keep their old form."""
    header: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "application": application_uid,
        "state": state,
        "head": head,
        "flow": flow.sha256,
        "flow_yaml": flow.text,
        "flow_source": flow.source,
    }
    if flows is not None:
        rows = list(rows)
        earlier = {sha: flows(sha).text for sha in flow_shas(rows) if sha != flow.sha256}
        if earlier:
            header[HEADER_FLOWS] = earlier
    yield canonical(header)
    for row in rows:
        yield canonical(row.as_export())


def verify_export(lines: Iterable[str], load_flow: Callable[[str, str], FlowSpec]) -> Verdict:
    """Offline verification of an export, without the database. Every line must be in
    canonical form, so even an edit that leaves the JSON equivalent is caught."""
    iterator = iter(lines)
    try:
        header_line = next(iterator).rstrip("\n")
    except StopIteration:
        return Verdict("?").fail(0, "empty export")
    try:
        header = json.loads(header_line)
    except ValueError:
        return Verdict("?").fail(0, "header line is not JSON")
    if not isinstance(header, dict):
        return Verdict("?").fail(0, "header line is not a gzsb-history/1 header")
    uid = str(header.get("application", "?"))
    if header.get("format") != EXPORT_FORMAT or canonical(header) != header_line:
        return Verdict(uid).fail(0, "header line is not a canonical gzsb-history/1 header")
    earlier = header.pop(HEADER_FLOWS, None)
    # Without its head or state the replay would silently skip checking them.
    if set(header) != HEADER_KEYS or not all(isinstance(v, str) for v in header.values()):
        return Verdict(uid).fail(0, f"header line needs exactly the string fields {', '.join(sorted(HEADER_KEYS))}")
    flow_text = header.get("flow_yaml")
    # Check the text against its hash before parsing it: an edited flow may not even load.
    if not isinstance(flow_text, str) or hashlib.sha256(flow_text.encode("utf-8")).hexdigest() != header.get("flow"):
        return Verdict(uid).fail(0, "the flow text in the header does not match its SHA-256")
    try:
        flow = load_flow(flow_text, str(header.get("flow_source", "<export>")))
    except ServiceError as exc:
        return Verdict(uid).fail(0, f"the flow in the header does not load: {exc}")
    if flow.sha256 != header.get("flow"):
        return Verdict(uid).fail(0, "the flow text in the header does not match its SHA-256")
    known = {flow.sha256: flow}
    if earlier is not None:
        problem = _load_earlier(earlier, flow.sha256, load_flow, known)
        if problem:
            return Verdict(uid).fail(0, problem)
    bad: list[Verdict] = []

    def rows() -> Iterator[EventRow]:
        for number, line in enumerate(iterator, start=2):
            line = line.rstrip("\n")
            try:
                obj = json.loads(line)
                row = EventRow.from_export(obj)
            except (ValueError, KeyError, TypeError):
                bad.append(Verdict(uid).fail(number - 1, f"line {number} is not a history event"))
                return
            if canonical(obj) != line:
                bad.append(Verdict(uid).fail(row.seq, f"line {number} is not in canonical form (edited)"))
                return
            yield row

    verdict = replay_application(
        uid, flow, rows(), flows=known.__getitem__, head=header.get("head"), state=header.get("state")
    )
    if bad and (verdict.ok or (verdict.bad_seq or 0) >= (bad[0].bad_seq or 0)):
        return bad[0]
    return verdict


def _load_earlier(
    earlier: Any, current: str, load_flow: Callable[[str, str], FlowSpec], known: dict[str, FlowSpec]
) -> str:
    """Check and load the header's earlier flow versions into ``known``; what is wrong, or ""."""
    if not isinstance(earlier, dict) or not earlier or current in earlier:
        return f"header field {HEADER_FLOWS} must map the SHA-256 of each earlier flow version to its text"
    for sha, text in earlier.items():
        if not isinstance(text, str) or hashlib.sha256(text.encode("utf-8")).hexdigest() != sha:
            return f"the flow text for {str(sha)[:12]} in the header does not match its SHA-256"
        try:
            known[sha] = load_flow(text, f"<export {sha[:12]}>")
        except ServiceError as exc:
            return f"the flow {sha[:12]} in the header does not load: {exc}"
    return ""

"""The fleet verify's fast path: a stored history checked straight from the streamed rows.

``fleet_replay`` passes the common case (one flow, every check passing) without building an
EventRow per event, from ``str`` rows or from the stored UTF-8 ``bytes`` (SQLite's raw cursor,
hashed without decoding); anything else is replayed again by ``replay_application``
(history_replay), so every failure is described by that one function. Split from
history_replay to keep each module readable in one go.
"""

from __future__ import annotations

import hashlib
import json
import json.scanner
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gzsb.workflow.history import MIGRATE_EVENT, EventRow, Redactor, Verdict, genesis_hash, redacted_snapshot
from gzsb.workflow.history_replay import _GUARDS_CACHE_MAX, _guards_consistent, replay_application
from gzsb.workflow.machine import MACHINES, FlowMachine
from gzsb.workflow.spec import FlowSpec

# json.loads without its Python wrappers (the C scanner itself).
_scan: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_quote = json.encoder.encode_basestring  # what canonical() writes for a str
# (flow, event, from, to, role, recorded guards) → the move passed every per-event rule.
_MOVES_OK: set[tuple[str, str, str, str, str, str]] = set()


def _move_ok(machine: FlowMachine, event: str, source: str, dest: str, role: str, guards: str) -> bool:
    spec = machine.legal(source, event, dest)
    ok = spec is not None and role in spec.actors and not _guards_consistent(machine, event, source, dest, guards)
    if ok:
        if len(_MOVES_OK) >= _GUARDS_CACHE_MAX:
            _MOVES_OK.clear()
        _MOVES_OK.add((machine.flow.sha256, event, source, dest, role, guards))
    return ok


def _same_json(a: Any, b: Any) -> bool:
    """canonical(a) == canonical(b) for JSON data without encoding: same types (True == 1 == 1.0
    in Python, not in JSON), floats by text. A False for NaN sends the caller to the general path."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        return a.keys() == b.keys() and all(_same_json(v, b[k]) for k, v in a.items())
    if kind is list:
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if kind is float:
        return repr(a) == repr(b)
    return (kind is str or kind is int or kind is bool or a is None) and a == b


def _same_redacted(data: dict[str, Any], snapshot: dict[str, Any], redactor: Redactor) -> bool:
    """canonical(redactor.redact(data)) == canonical(snapshot), walking ``data`` once."""
    sensitive, hash_value = redactor.sensitive, redactor.hash_value
    if type(snapshot) is not dict or data.keys() != snapshot.keys():
        return False
    for key, item in data.items():
        other = snapshot[key]
        kind = type(item)
        if key in sensitive:
            if type(other) is not str or hash_value(item) != other:
                return False
        elif kind is str:  # most values: no call
            if type(other) is not str or item != other:
                return False
        elif kind is dict:
            if not _same_redacted(item, other, redactor):
                return False
        elif not _same_json(item, other):  # also False for a Mapping that is no dict: not JSON
            return False
    return True


def fleet_replay(
    application_uid: str,
    flow: FlowSpec,
    raw: Sequence[Sequence[Any]],
    *,
    flows: Callable[[str], FlowSpec],
    head: str | None,
    state: str | None,
    data: Mapping[str, Any] | str | None,
    redactor: Redactor | None,
    leaves: bytearray | None = None,
) -> Verdict:
    """``replay_application`` for rows as the fleet verify streams them (application id, then
    the EventRow fields in order, then the tree index), with ``data`` not yet redacted (a dict,
    or the stored JSON text). The text fields are ``str``, or the stored UTF-8 ``bytes``
    (SQLite's raw cursor: no decoding).
    The common case (one flow, every check passing) is checked here without building an
    EventRow per event; anything else (a migration, any failed check, odd types) is replayed
    again by ``replay_application``, so a failure is always described by that one function.

    With ``leaves`` and bytes rows logged at consecutive tree indexes from ``raw[0][-1]``, a
    passing history also appends each event's transparency-log leaf hash to ``leaves`` (the
    event hash is at hand then); when nothing was appended the caller hashes the leaves itself."""
    if redactor is not None:
        data = data or {}
    binding = data if redactor is not None else None
    try:
        if raw and type(raw[0][12]) is bytes:
            end = _fleet_ok_bytes(application_uid, flow, raw, head, state, binding, redactor, leaves)
        else:
            if isinstance(binding, str):
                binding = json.loads(binding)
            end = _fleet_ok(application_uid, flow, raw, head, state, binding, redactor)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, StopIteration):
        end = None  # odd types or text (invalid UTF-8 included): the general replay says what is wrong
    if end is not None:
        return Verdict(application_uid, events=len(raw), state=end, flow=flow.sha256)
    current: Mapping[str, Any] | None = json.loads(data) if isinstance(data, str) else data  # as the JSON type gives it
    rows = [EventRow(*(_text(v) for v in r[1:14])) for r in raw]
    snapshot = redacted_snapshot(current or {}, redactor) if redactor is not None else None
    return replay_application(application_uid, flow, rows, flows=flows, head=head, state=state, data=snapshot)


def _text(value: Any) -> Any:
    # Text that is not UTF-8 cannot be what was hashed: the replacement characters make the
    # general replay report the event as edited.
    return value.decode("utf-8", "replace") if type(value) is bytes else value


def _fleet_ok(
    uid: str,
    flow: FlowSpec,
    raw: Sequence[Sequence[Any]],
    head: str | None,
    state: str | None,
    data: Mapping[str, Any] | None,
    redactor: Redactor | None,
) -> str | None:
    """The end state, only if ``replay_application`` would pass this history; None: ask it."""
    machine = MACHINES.get(flow)
    flow_sha = flow.sha256
    sha256 = hashlib.sha256
    current = flow.initial
    prev = genesis_hash(uid, flow_sha)
    lead = f"|[{_quote(uid)},"
    tail = f",{_quote(flow_sha)},"
    snapshot: dict[str, Any] = {}
    moves_ok = _MOVES_OK
    expected = 1
    for _, seq, event, source, dest, actor, role, guards, payload, row_flow, at, prev_hash, digest, changes, _ix in raw:
        if (
            seq != expected
            or type(seq) is not int
            or prev_hash != prev
            or not changes
            or row_flow != flow_sha
            or source != current
            or event == MIGRATE_EVENT
        ):
            return None
        body = (
            f"{prev}{lead}{seq},{_quote(event)},{_quote(source)},{_quote(dest)},{_quote(actor)},{_quote(role)}"
            f"{tail}{_quote(at)},{guards},{payload},{changes}]"
        )
        if sha256(body.encode("utf-8")).hexdigest() != digest:
            return None
        if (flow_sha, event, source, dest, role, guards) not in moves_ok and not _move_ok(
            machine, event, source, dest, role, guards
        ):
            return None
        if data is not None and changes != "{}":
            parsed, end = _scan(changes, 0)
            if end != len(changes) or type(parsed) is not dict:
                return None
            for key, value in parsed.get("set", {}).items():
                snapshot[key] = value
            for key in parsed.get("unset", ()):
                snapshot.pop(key, None)
        current, prev = dest, digest
        expected += 1
    if head is not None and head != prev:
        return None
    if state is not None and state != current:
        return None
    if data is None or redactor is None:
        return current
    if type(redactor) is not Redactor or type(data) is not dict:  # a subclass may redact otherwise
        return None
    return current if _same_redacted(data, snapshot, redactor) else None


# The C scanner with JSON numbers kept as their text, in types no other JSON value decodes to:
# an integer as bytes, a float as a tuple of its characters (both made by C callables). Equal
# tagged values have equal canonical text; a number written two ways ("1.0", "1.00") only makes
# the fast path give up, and the general replay decides.
_scan_tagged: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder(parse_int=str.encode, parse_float=tuple)  # type: ignore[arg-type]
)


def _redact_tagged(data: dict[str, Any], sensitive: frozenset[str], hash_value: Callable[[Any], str]) -> bool:
    """Redactor.redact in place on tagged-decoded data; False where a sensitive value is not a
    str (the canonical text of a tagged number is not the number's: the general path hashes it)."""
    for key in sensitive & data.keys():
        value = data[key]
        if type(value) is not str:
            return False
        data[key] = hash_value(value)
    for value in data.values():
        if type(value) is dict and not _redact_tagged(value, sensitive, hash_value):
            return False
    return True


# What encode_basestring escapes (ensure_ascii=False): a bytes value without any of these is
# quoted by just adding the quotes (valid UTF-8 assumed: checked separately).
_ESCAPED = re.compile(rb'[\x00-\x1f"\\]')
# flow SHA-256 → (event, from, to, role, recorded guards) as stored bytes → the quoted parts of
# the event hash's body around the actor, for a move that passed every per-event rule.
_MOVES_BYTES: dict[bytes, dict[tuple[bytes, bytes, bytes, bytes, bytes], tuple[bytes, bytes]]] = {}


def _move_parts(
    machine: FlowMachine,
    moves: dict[tuple[bytes, bytes, bytes, bytes, bytes], tuple[bytes, bytes]],
    key: tuple[bytes, bytes, bytes, bytes, bytes],
) -> tuple[bytes, bytes] | None:
    event_b, source_b, dest_b, role_b, guards_b = key
    # Strict decoding: a stored name that is not UTF-8 is not a legal move.
    event, source, dest, role, guards = (v.decode() for v in (event_b, source_b, dest_b, role_b, guards_b))
    if not _move_ok(machine, event, source, dest, role, guards):
        return None
    parts = (
        f"{_quote(event)},{_quote(source)},{_quote(dest)},".encode(),
        f",{_quote(role)},{_quote(machine.flow.sha256)},".encode(),
    )
    if len(moves) >= _GUARDS_CACHE_MAX:
        moves.clear()
    moves[key] = parts
    return parts


def _fleet_ok_bytes(
    uid: str,
    flow: FlowSpec,
    raw: Sequence[Sequence[Any]],
    head: str | None,
    state: str | None,
    data: Mapping[str, Any] | str | None,
    redactor: Redactor | None,
    leaves: bytearray | None = None,
) -> str | None:
    """``_fleet_ok`` for rows whose text fields are the stored UTF-8 bytes: the event hash is
    taken over the fetched bytes spliced together, never decoded and encoded again. Every
    field is still checked: names, role and guards through the per-move table (decoded once
    per distinct move), the rest by exact comparison, escaping and UTF-8 checks."""
    machine = MACHINES.get(flow)
    flow_b = flow.sha256.encode()
    sha256 = hashlib.sha256
    escaped = _ESCAPED.search
    current = flow.initial.encode()
    prev = genesis_hash(uid, flow.sha256).encode()
    lead = f"|[{_quote(uid)},".encode()
    snapshot: dict[str, Any] = {}
    moves = _MOVES_BYTES.get(flow_b) or _MOVES_BYTES.setdefault(flow_b, {})
    binding = data is not None
    # Given the data's JSON text, both sides are decoded with numbers kept as tagged text, so
    # that Python's == (in C) is exact: True, 1 and 1.0 no longer compare equal.
    tagged = type(data) is str
    scan = _scan_tagged if tagged else _scan
    expected = 1
    for _, seq, event, source, dest, actor, role, guards, payload, row_flow, at, prev_hash, digest, changes, _ix in raw:
        if (
            seq != expected
            or type(seq) is not int
            or prev_hash != prev
            or not changes
            or row_flow != flow_b
            or source != current
        ):
            return None
        parts = moves.get((event, source, dest, role, guards))
        if parts is None:
            parts = _move_parts(machine, moves, (event, source, dest, role, guards))
            if parts is None:
                return None  # a migration or an illegal move: the general replay names it
        pair = actor + at
        if not pair.isascii():
            pair.decode()  # UnicodeDecodeError (a ValueError) when not UTF-8
        if escaped(pair) is not None:
            return None  # would be escaped in the body: the general path encodes it
        if not payload.isascii():
            payload.decode()
        body = b'%s%s%d,%s"%s"%s"%s",%s,%s,%s]' % (
            prev, lead, seq, parts[0], actor, parts[1], at, guards, payload, changes
        )  # fmt: skip
        if sha256(body).hexdigest().encode() != digest:
            return None
        if binding and changes != b"{}":
            text = changes.decode()
            parsed, end = scan(text, 0)
            if end != len(text) or type(parsed) is not dict:
                return None
            if "set" in parsed:
                changed = parsed["set"]
                if type(changed) is not dict:  # "set": null too: the general replay calls it malformed
                    return None
                snapshot.update(changed)
            for key in parsed.get("unset", ()):
                snapshot.pop(key, None)
        elif not changes.isascii():
            changes.decode()
        current, prev = dest, digest
        expected += 1
    if head is not None and head.encode() != prev:
        return None
    end_state = current.decode()
    if state is not None and state != end_state:
        return None
    if data is not None and redactor is not None:
        if type(redactor) is not Redactor:  # a subclass may redact otherwise
            return None
        if type(data) is str:
            decoded, end = _scan_tagged(data, 0)
            if end != len(data) or type(decoded) is not dict:
                return None
            # Ours alone (decoded just now): redacted where it lies, then one C comparison.
            if not (_redact_tagged(decoded, redactor.sensitive, redactor.hash_value) and decoded == snapshot):
                return None
        elif type(data) is not dict or not _same_redacted(data, snapshot, redactor):
            return None
    if leaves is not None and raw and uid.isalnum() and uid.isascii():
        # The log's leaf of each event (gzsb.audit.fleet.event_leaf_hash) when the events were
        # logged at consecutive tree indexes; the seqs are ints and the digests hexdigests here.
        first = raw[0][14]
        if type(first) is int and [r[14] for r in raw] == list(range(first, first + len(raw))):
            lead = f'\x00gzsb-log/1 event\n["{uid}",'.encode()
            leaves += b"".join([sha256(b'%s%d,"%s"]\n' % (lead, r[1], r[12])).digest() for r in raw])
    return end_state

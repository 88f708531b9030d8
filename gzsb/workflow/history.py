"""The hash-chained history: the event encoding, the log's leaves and the data binding.

An event's hash is SHA-256 over its previous hash and a canonical JSON array of its
fields, so editing, deleting, inserting or reordering any event breaks the chain at
that event. The chain starts from a genesis hash bound to the application and its
flow version; a ``migrate_flow`` event moves the rest of the chain onto another version.
Each event also records the top-level keys of the application's data its step changed,
with their new values redacted (``changes``, covered by the hash), so a replay rebuilds
the redacted data and an edit of the data itself is caught. The exact encoding is in
docs/audit-format.md. Replaying is in ``history_replay``, exports in ``history_export``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LEGACY_FORMAT = "gzsb-history/1"
# Leaf data of the transparency log: a domain line, then one canonical JSON array.
LEAF_EVENT = "gzsb-log/1 event\n"
LEAF_PUBLISH = "gzsb-log/1 publish\n"
# The engine's reserved event that moves an application to another flow version; no flow
# may declare it (validate.py), and only an admin records it.
MIGRATE_EVENT = "migrate_flow"
MIGRATE_ROLE = "admin"
# Event fields in hashing and export order.
FIELDS = ("seq", "event", "from", "to", "actor", "role", "guards", "payload", "changes", "flow", "at", "prev", "hash")


# HMAC-SHA256's block size and pads (RFC 2104), as translation tables over the key's bytes.
_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))

# What json.dumps(ensure_ascii=False) writes for a str (the C encoder when available).
_json_string = json.encoder.encode_basestring


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
    strings = (application_uid, event, from_state, to_state, actor, role, flow_sha256, at)
    if type(seq) is int and all(type(v) is str for v in strings):
        # The same text as canonical() of the list, without the encoder's per-call set-up
        # (the verify hot path: one call per event).
        quoted = [_json_string(v) for v in strings]
        head = f"[{quoted[0]},{seq},{','.join(quoted[1:])}]"
    else:
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


def same_json(a: Any, b: Any) -> bool:
    """Whether ``canonical(a) == canonical(b)``. JSON's own types (str, int, bool, None, lists,
    dicts with str keys) are compared as values, which is the same answer without encoding
    both sides (two encodings per data key were most of ``data_changes``); anything else
    (floats: -0.0, NaN; other types) is compared as encoded."""
    kind = type(a)
    if kind is type(b):
        if kind is str or kind is int or kind is bool or a is None:
            return a == b
        if kind is list:
            return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
        if kind is dict and all(type(k) is str for k in a) and all(type(k) is str for k in b):
            return a.keys() == b.keys() and all(same_json(v, b[k]) for k, v in a.items())
    return canonical(a) == canonical(b)


def data_changes(before: Mapping[str, Any], after: Mapping[str, Any], redactor: Redactor) -> str:
    """The ``changes`` of an event: top-level data keys whose value changed, new values redacted."""
    changed = {k: v for k, v in after.items() if k not in before or not same_json(before[k], v)}
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
        # HMAC-SHA256 (RFC 2104) keyed once: the inner and outer hashers have absorbed the
        # padded key, and each value copies them (C calls only; hmac.HMAC's copy and digest
        # are Python methods, a few µs per value on the verify path).
        secret = key.encode("utf-8")
        if len(secret) > _BLOCK:
            secret = hashlib.sha256(secret).digest()
        secret = secret.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(secret.translate(_IPAD))
        self._outer = hashlib.sha256(secret.translate(_OPAD))
        self.sensitive = frozenset(sensitive)

    def hash_value(self, value: Any) -> str:
        inner = self._inner.copy()
        # canonical() of a str is its quoted form: the C quoter without json.dumps' set-up.
        inner.update((_json_string(value) if type(value) is str else canonical(value)).encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return f"hmac-sha256:{outer.hexdigest()}"

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

"""Engine.fire(): role → guards → step → move → history → outbox, in one transaction.

The engine knows the flow, the registries and a Store (the persistence port, implemented
with SQLAlchemy in ``gzsb.store``). It never imports a guard or a step: it looks them up
by the names the flow uses. Engine.migrate() moves an application to another published
flow version, recorded in the same chain as the reserved ``migrate_flow`` event
(``gzsb.workflow.migrate``).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from marshmallow import Schema, ValidationError, fields

from gzsb.errors import (
    EventNotAvailable,
    Forbidden,
    GuardRefused,
    InvalidInput,
    StaleApplication,
)
from gzsb.workflow.history import (
    MIGRATE_EVENT,
    MIGRATE_ROLE,
    EventRow,
    Redactor,
    canonical,
    data_changes,
    event_hash,
    utc_text,
)
from gzsb.workflow.machine import MACHINES
from gzsb.workflow.migrate import record_migration
from gzsb.workflow.ports import Actor, Record, Store
from gzsb.workflow.registry import GUARDS, STEPS, GuardRegistry, StepRegistry
from gzsb.workflow.spec import FlowSpec, TransitionSpec

log = logging.getLogger(__name__)

# Called after every fire() with (event, result, seconds): "ok" or the exception's class name.
# The metrics module subscribes; the engine itself knows nothing of Prometheus.
FIRE_OBSERVERS: list[Callable[[str, str, float], None]] = []


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class GuardContext:
    """What a guard may read. Guards are pure: no store, no services."""

    application_uid: str
    state: str
    data: Mapping[str, Any]
    flow: FlowSpec
    actor: Actor
    now: datetime

    def get(self, *path: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node


@dataclass
class StepContext:
    """What a step may change: ``data`` (saved with the transition), the outbox (``emit``)
    and the history payload (``record``). ``services`` holds the adapters."""

    record: Record
    flow: FlowSpec
    actor: Actor
    now: datetime
    data: dict[str, Any]
    services: Any
    store: Store
    recorded: dict[str, Any] = field(default_factory=dict)
    sensitive: set[str] = field(default_factory=set)
    effects: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.flow.settings

    def emit(self, kind: str, **payload: Any) -> None:
        """Queue a side effect (SMS, job) for after the commit."""
        self.effects.append((kind, payload))

    def record_in_history(self, *, sensitive: bool = False, **values: Any) -> None:
        self.recorded.update(values)
        if sensitive:
            self.sensitive.update(values)

    def section(self, name: str) -> dict[str, Any]:
        return self.data.setdefault(name, {})


@dataclass(frozen=True)
class GuardResult:
    guard: str
    passed: bool
    reason: str | None


@dataclass(frozen=True)
class EventOption:
    """An event as the student or staff sees it: can it fire, and if not, why."""

    event: str
    label: str
    available: bool
    reasons: tuple[str, ...]
    input: dict[str, Any]


@dataclass(frozen=True)
class Fired:
    event: str
    from_state: str
    to_state: str
    seq: int
    version: int
    hash: str


def schema_doc(schema: Schema | None) -> dict[str, Any]:
    """A small JSON description of a step's payload for the API."""
    if schema is None:
        return {}
    doc: dict[str, Any] = {}
    for name, f in schema.fields.items():
        if f.dump_only:
            continue
        entry: dict[str, Any] = {"type": type(f).__name__.lower(), "required": bool(f.required)}
        label = f.metadata.get("label")
        if label:
            entry["label"] = label
        choices = getattr(f.validate, "choices", None) if f.validate else None
        if choices:
            entry["choices"] = list(choices)
        if isinstance(f, fields.List) and isinstance(f.inner, fields.Nested):
            entry["items"] = schema_doc(f.inner.schema)
        doc[f.data_key or name] = entry
    return doc


class Engine:
    def __init__(
        self,
        store: Store,
        *,
        redactor: Redactor,
        services: Any = None,
        guards: GuardRegistry = GUARDS,
        steps: StepRegistry = STEPS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.redactor = redactor
        self.services = services
        self.guards = guards
        self.steps = steps
        self.clock = clock

    # -- reading -------------------------------------------------------------------

    def evaluate(
        self, flow: FlowSpec, record: Record, event: str, actor: Actor, now: datetime
    ) -> tuple[TransitionSpec | None, list[tuple[TransitionSpec, list[GuardResult]]]]:
        """Guards of each branch in declaration order, stopping at the first that passes."""
        ctx = GuardContext(record.uid, record.state, MappingProxyType(record.data or {}), flow, actor, now)
        evaluated: list[tuple[TransitionSpec, list[GuardResult]]] = []
        for branch in flow.branches(event, record.state):
            results = []
            for call in branch.guards:
                reason = self.guards.get(call.name).check(ctx, call.args)
                results.append(GuardResult(call.describe(), reason is None, reason))
            evaluated.append((branch, results))
            if all(r.passed for r in results):
                return branch, evaluated
        return None, evaluated

    def options(self, record: Record, actor: Actor, now: datetime | None = None) -> list[EventOption]:
        """Events the actor's role may fire from the current state, with blocked reasons."""
        flow = self.store.flow_of(record)
        now = now or self.clock()
        out: list[EventOption] = []
        for event in flow.events_from(record.state):
            branches = flow.branches(event, record.state)
            if not any(actor.role in b.actors for b in branches):
                continue
            chosen, evaluated = self.evaluate(flow, record, event, actor, now)
            reasons = _reasons(evaluated) if chosen is None else ()
            if chosen is not None and actor.role not in chosen.actors:
                continue
            first = branches[0]
            schema = self.steps.get(first.step).schema if first.step else None
            out.append(EventOption(event, first.label or event, chosen is not None, tuple(reasons), schema_doc(schema)))
        return out

    # -- firing --------------------------------------------------------------------

    def fire(
        self,
        application_id: int,
        event: str,
        actor: Actor,
        payload: Mapping[str, Any] | None = None,
        *,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Fired:
        started, result = time.perf_counter(), "ok"
        try:
            return self._fire_once(application_id, event, actor, payload, expected_version=expected_version, now=now)
        except Exception as exc:
            result = type(exc).__name__
            raise
        finally:
            for observe in FIRE_OBSERVERS:
                observe(event, result, time.perf_counter() - started)

    def _fire_once(
        self,
        application_id: int,
        event: str,
        actor: Actor,
        payload: Mapping[str, Any] | None = None,
        *,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> Fired:
        now = now or self.clock()
        with self.store.transaction():
            record = self.store.lock(application_id)
            if expected_version is not None and record.version != expected_version:
                raise StaleApplication(
                    f"application {record.uid} is at version {record.version}, not {expected_version}"
                )
            flow = self.store.flow_of(record)
            source = record.state
            branches = flow.branches(event, source)
            if not branches:
                raise EventNotAvailable(f"event {event!r} is not available in state {source!r}")
            if not any(actor.role in b.actors for b in branches):
                raise Forbidden(f"role {actor.role!r} may not fire {event!r}")
            chosen, evaluated = self.evaluate(flow, record, event, actor, now)
            if chosen is None:
                reasons = _reasons(evaluated)
                raise GuardRefused(f"{event!r} refused for {record.uid}: {'; '.join(reasons)}", reasons)
            if actor.role not in chosen.actors:
                raise Forbidden(f"role {actor.role!r} may not take {event!r} to {chosen.dest!r}")

            ctx = StepContext(record, flow, actor, now, _copy_json(record.data or {}), self.services, self.store)
            history_payload: dict[str, Any] = {}
            if chosen.step:
                step = self.steps.get(chosen.step)
                loaded = _load(step.schema, payload or {}, event)
                step.run(ctx, loaded)
                history_payload = self.redactor.redact(_jsonable(loaded), _sensitive_fields(step.schema))
            history_payload.update(self.redactor.redact(_jsonable(ctx.recorded), ctx.sensitive) if ctx.recorded else {})

            dest = MACHINES.get(flow).move(source, event, chosen)
            seq = record.seq + 1
            guards_text = canonical([[b.dest, [[r.guard, r.passed] for r in results]] for b, results in evaluated])
            payload_text = canonical(history_payload)
            at = utc_text(now)
            # The data binding: what the step changed, redacted, covered by the hash.
            # The row's data came out of a JSON column: already JSON, no _jsonable copy of it.
            changes = data_changes(record.data or {}, _jsonable(ctx.data), self.redactor)
            digest = event_hash(
                record.head, record.uid, seq, event, source, dest, actor.id, actor.role,
                guards_text, payload_text, flow.sha256, at, changes,
            )  # fmt: skip
            row = EventRow(
                seq, event, source, dest, actor.id, actor.role, guards_text, payload_text,
                flow.sha256, at, record.head, digest, changes,
            )  # fmt: skip
            self.store.append(record, row)
            for kind, effect in ctx.effects:
                self.store.outbox(record, kind, {"application": record.uid, "seq": seq, **effect})
            if dest != source:
                template = flow.notify.get(dest)
                if template:
                    self.store.outbox(record, "sms", {"application": record.uid, "seq": seq, "template": template})
                # Timers are armed only on entering a state that has some (a migration re-arms
                # under its target), so a state without timers has none open: no UPDATE.
                if flow.timers_for(source):
                    self.store.cancel_timers(record, now)
                for timer in flow.timers_for(dest):
                    self.store.arm_timer(record, dest, timer.event, seq, now + timer.after)
            self.store.save(record, state=dest, data=ctx.data, seq=seq, head=digest)
            fired = Fired(event, source, dest, seq, record.version, digest)
            uid = record.uid  # read before the commit: afterwards the row would be loaded again
        log.info("application %s: %s %s → %s (seq %d, %s)", uid, event, source, dest, seq, actor.id)
        return fired

    # -- moving to another flow version ----------------------------------------------

    def migrate(
        self,
        application_id: int,
        target: FlowSpec,
        *,
        mapping: Mapping[str, str],
        actor: Actor,
        approved_by: str | None,
        reason: str = "",
        now: datetime | None = None,
    ) -> Fired:
        """Move the application onto ``target`` (a published version), recorded as a
        ``migrate_flow`` event chained like every other: its state stays unless ``mapping``
        names it. Timers are re-armed under the target. One transaction: on any error
        nothing changes. Raises MigrationRefused when the state has nowhere to go."""
        if actor.role != MIGRATE_ROLE:
            raise Forbidden(f"role {actor.role!r} may not migrate applications (only {MIGRATE_ROLE})")
        now = now or self.clock()
        with self.store.transaction():
            record = self.store.lock(application_id)
            done = record_migration(
                self.store, record, target, mapping=mapping, actor=actor, approved_by=approved_by, reason=reason,
                now=now,
            )  # fmt: skip
            fired = Fired(MIGRATE_EVENT, done.source, done.dest, done.seq, record.version, done.head)
        log.info(
            "application %s: migrated %s → %s, %s → %s (seq %d, %s, approved by %s)",
            record.uid, done.from_flow[:12], target.sha256[:12], done.source, done.dest, done.seq, actor.id,
            approved_by,
        )  # fmt: skip
        return fired


def _reasons(evaluated: Iterable[tuple[TransitionSpec, list[GuardResult]]]) -> list[str]:
    reasons: list[str] = []
    for _, results in evaluated:
        for r in results:
            if not r.passed and r.reason and r.reason not in reasons:
                reasons.append(r.reason)
    return reasons or ["当前不能进行此操作"]


def _load(schema: Schema | None, payload: Mapping[str, Any], event: str) -> dict[str, Any]:
    if schema is None:
        return {}
    try:
        return schema.load(dict(payload))
    except ValidationError as exc:
        raise InvalidInput(f"{event}: invalid payload: {sorted(exc.messages)}", _field_messages(exc.messages)) from None


def _field_messages(messages: Any) -> dict[str, Any]:
    return messages if isinstance(messages, dict) else {"_schema": messages}


def _sensitive_fields(schema: Schema | None) -> set[str]:
    if schema is None:
        return set()
    return {f.data_key or name for name, f in schema.fields.items() if f.metadata.get("sensitive")}


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON data (what a JSON column holds): copy.deepcopy's memo and
    dispatch cost more than the rest of a transition's Python; anything else is deep-copied."""
    kind = type(value)
    if kind is dict:
        return {k: _copy_json(v) for k, v in value.items()}
    if kind is list:
        return [_copy_json(v) for v in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


def _jsonable(value: Any) -> Any:
    """Validated payloads may hold dates; the history stores canonical JSON."""
    kind = type(value)  # JSON's own types first, without the ABC checks below (the hot path)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): _jsonable(v) for k, v in value.items()}
    if kind is list:
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return utc_text(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value

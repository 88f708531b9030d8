"""Moving an application onto another published flow version (``Engine.migrate``'s work).

The move is recorded in the application's own chain as the reserved ``migrate_flow``
event, under the target flow; timers are re-armed under the target. The functions here
run inside the engine's transaction and change things only through its Store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from gzsb.errors import MigrationRefused
from gzsb.workflow.history import MIGRATE_EVENT, EventRow, canonical, event_hash, utc_text
from gzsb.workflow.ports import Actor, Record, Store
from gzsb.workflow.spec import FlowSpec


@dataclass(frozen=True)
class Migration:
    """What a recorded migration did: the states, its seq and the application's new head."""

    from_flow: str
    source: str
    dest: str
    seq: int
    head: str


def migration_target(uid: str, state: str, flow: FlowSpec, target: FlowSpec, mapping: Mapping[str, str]) -> str:
    """Where ``state`` goes in ``target``; MigrationRefused names the application and the choices."""
    valid = ", ".join(sorted(target.states))
    where = f"application {uid} in state {state!r}"
    if flow.sha256 == target.sha256:
        raise MigrationRefused(f"{where} already runs on flow {target.flow}@{target.sha256[:12]}")
    unknown = sorted(f"{old}={new}" for old, new in mapping.items() if new not in target.states)
    if unknown:
        raise MigrationRefused(
            f"{where}: the mapping names states flow {target.sha256[:12]} does not have ({', '.join(unknown)}); "
            f"valid target states: {valid}"
        )
    dest = mapping.get(state, state)
    if dest not in target.states:
        raise MigrationRefused(
            f"{where}: flow {target.flow}@{target.sha256[:12]} has no state {state!r}; map it to one of: {valid}"
        )
    return dest


def record_migration(
    store: Store,
    record: Record,
    target: FlowSpec,
    *,
    mapping: Mapping[str, str],
    actor: Actor,
    approved_by: str | None,
    reason: str,
    now: datetime,
) -> Migration:
    """Append the ``migrate_flow`` event to the locked ``record`` and switch its flow (in the caller's transaction)."""
    flow = store.flow_of(record)
    source = record.state
    dest = migration_target(record.uid, source, flow, target, mapping)
    seq = record.seq + 1
    payload = {
        "from_flow": flow.sha256,
        "to_flow": target.sha256,
        "mapping": dict(mapping),
        "requested_by": actor.id,
        "approved_by": approved_by,
        "reason": reason,
    }
    guards_text, payload_text, at = canonical([]), canonical(payload), utc_text(now)
    # Recorded under the target: every event from here on belongs to it.
    digest = event_hash(
        record.head, record.uid, seq, MIGRATE_EVENT, source, dest, actor.id, actor.role,
        guards_text, payload_text, target.sha256, at, "{}",
    )  # fmt: skip
    row = EventRow(
        seq, MIGRATE_EVENT, source, dest, actor.id, actor.role, guards_text, payload_text,
        target.sha256, at, record.head, digest, "{}",
    )  # fmt: skip
    store.switch_flow(record, target.sha256)
    store.append(record, row)
    # Old timers were armed for an earlier seq and flow; the target's apply from now.
    store.cancel_timers(record, now)
    for timer in target.timers_for(dest):
        store.arm_timer(record, dest, timer.event, seq, now + timer.after)
    template = target.notify.get(dest) if dest != source else None
    if template:
        store.outbox(record, "sms", {"application": record.uid, "seq": seq, "template": template})
    store.save(record, state=dest, data=dict(record.data or {}), seq=seq, head=digest)
    return Migration(flow.sha256, source, dest, seq, digest)

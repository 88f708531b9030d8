"""Offline bundles: one application's history with the proofs that tie it to the signed log.

A bundle is one canonical JSON object (format ``gzsb-bundle/1``)::

    {"format": "gzsb-bundle/1",
     "history": [<the gzsb-history/2 export lines: header, then one event a line>],
     "data": {<key>: <redacted current value>},          # the application's data, redacted
     "checkpoint": "<signed note, with the witness lines>", # "" when none yet
     "leaves": [{"seq": n, "index": i, "proof": [<base64 hash>, ...]}, ...]}

``verify_bundle`` checks it with pinned keys only: the chain and replay (as
``verify_export``), the data rebuilt from the events' changes against ``data``, every
event's leaf and inclusion proof against the checkpoint's root, the log's signature and,
when required, the witness's cosignature. Events logged after the checkpoint carry no proof.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.audit.log import cosigned_note, latest_checkpoint, tree
from gzsb.audit.service import event_leaf_hash, find_application
from gzsb.models import HistoryEvent
from gzsb.store import FLOWS, history_rows
from gzsb.workflow.checkpoint import NoteError, Verifier, verify_checkpoint
from gzsb.workflow.history import (
    EventRow,
    Redactor,
    Verdict,
    apply_changes,
    canonical,
    first_difference,
    redacted_snapshot,
)
from gzsb.workflow.history_export import export_lines, verify_export
from gzsb.workflow.spec import FlowSpec
from gzsb.workflow.translog import ProofError, verify_inclusion

BUNDLE_FORMAT = "gzsb-bundle/1"


def export_bundle(session: Session, uid: str, redactor: Redactor, *, cosigned_only: bool = False) -> bytes:
    """The bundle of application ``uid`` against the latest (or latest cosigned) checkpoint."""
    app = find_application(session, uid)
    rows = list(history_rows(session, app.id))
    flow = FLOWS.by_version(session, app.flow_version_id)
    lines = list(export_lines(uid, flow, app.state, app.head, rows, flows=lambda sha: FLOWS.by_sha(session, sha)))
    row = latest_checkpoint(session, cosigned=cosigned_only)
    leaves = []
    note = ""
    if row is not None:
        note = cosigned_note(session, row)
        merkle = tree(session)
        logged = session.execute(
            select(HistoryEvent.seq, HistoryEvent.log_index)
            .where(HistoryEvent.application_id == app.id, HistoryEvent.log_index < row.size)
            .order_by(HistoryEvent.seq)
        )
        for seq, index in logged:
            proof = merkle.inclusion_proof(index, row.size)
            leaves.append({"seq": seq, "index": index, "proof": [base64.b64encode(h).decode("ascii") for h in proof]})
    data = redacted_snapshot(app.data or {}, redactor)
    bundle = {"format": BUNDLE_FORMAT, "history": lines, "data": data, "checkpoint": note, "leaves": leaves}
    return (canonical(bundle) + "\n").encode("utf-8")


@dataclass
class BundleResult:
    verdict: Verdict
    problems: list[str] = field(default_factory=list)
    checkpoint_size: int | None = None
    proven: int = 0  # events whose leaf was proven in the checkpoint
    witnesses: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.problems

    def describe(self) -> str:
        lines = [self.verdict.describe()] + [f"  log: {p}" for p in self.problems]
        if self.ok:
            size = self.checkpoint_size
            lines.append(
                f"  log: {self.proven} event(s) proven in checkpoint of size {size}"
                + (f", cosigned by {', '.join(self.witnesses)}" if self.witnesses else "")
            )
        return "\n".join(lines)


def verify_bundle(
    text: str,
    load_flow: Callable[[str, str], FlowSpec],
    log_key: Verifier,
    *,
    origin: str,
    witness_keys: tuple[Verifier, ...] = (),
    require_witness: bool = False,
) -> BundleResult:
    """Check a bundle offline with pinned keys (no database)."""
    try:
        bundle = json.loads(text)
        history = bundle["history"]
        if bundle.get("format") != BUNDLE_FORMAT or not isinstance(history, list):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return BundleResult(Verdict("?").fail(0, f"not a {BUNDLE_FORMAT} bundle"))
    verdict = verify_export(history, load_flow)
    result = BundleResult(verdict)
    uid = verdict.application
    events = [EventRow.from_export(json.loads(line)) for line in history[1:]] if verdict.ok else []
    if verdict.ok:
        snapshot: dict[str, Any] = {}
        for row in events:
            apply_changes(snapshot, row.changes)
        key = first_difference(dict(bundle.get("data") or {}), snapshot)
        if key is not None:
            verdict.fail(verdict.events, f"application data {key!r} differs from what its history recorded")
    note = bundle.get("checkpoint") or ""
    if not note:
        result.problems.append("the bundle carries no checkpoint: nothing ties it to the log")
        return result
    try:
        checked = verify_checkpoint(
            note, log_key, witness_keys, required_witnesses=1 if require_witness else 0, origin=origin
        )
    except NoteError as exc:
        result.problems.append(f"checkpoint: {exc}")
        return result
    cp = checked.checkpoint
    result.checkpoint_size, result.witnesses = cp.size, checked.witnesses
    by_seq = {row.seq: row for row in events}
    for leaf in bundle.get("leaves") or []:
        row = by_seq.get(leaf.get("seq"))
        if row is None:
            result.problems.append(f"tree index {leaf.get('index')}: proof for seq {leaf.get('seq')}, not in history")
            continue
        try:
            proof = [base64.b64decode(h, validate=True) for h in leaf["proof"]]
            verify_inclusion(event_leaf_hash(uid, row.seq, row.hash), leaf["index"], cp.size, proof, cp.root)
        except (ProofError, ValueError, KeyError, TypeError) as exc:
            result.problems.append(f"tree index {leaf.get('index')} (seq {row.seq}): not in the checkpoint: {exc}")
            continue
        result.proven += 1
    if verdict.ok and result.proven < len(events) and not any("tree index" in p for p in result.problems):
        # Events after the checkpoint are not proven yet; the ones before it must be.
        proven = {leaf.get("seq") for leaf in bundle.get("leaves") or []}
        first_unproven = next(row.seq for row in events if row.seq not in proven)
        if any(row.seq in proven for row in events if row.seq > first_unproven):
            result.problems.append(f"seq {first_unproven} has no inclusion proof though later events do")
    return result

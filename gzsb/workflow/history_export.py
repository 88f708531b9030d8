"""History exports: the gzsb-history/2 JSON lines and their offline verification.

A header line carries the flow text (and, for a migrated history, the earlier versions it
ran under), then one canonical event a line; ``verify_export`` replays them without the
database. The encoding is in docs/audit-format.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gzsb.errors import ServiceError
from gzsb.workflow.history import (
    MIGRATE_EVENT,
    EventRow,
    Verdict,
    canonical,
)
from gzsb.workflow.history_replay import migration_payload, replay_application
from gzsb.workflow.spec import FlowSpec

EXPORT_FORMAT = "gzsb-history/2"
HEADER_KEYS = frozenset({"format", "application", "state", "head", "flow", "flow_yaml", "flow_source"})
# Optional header key: {sha256: yaml text} of the earlier flow versions a migrated history ran under.
HEADER_FLOWS = "flows"


def flow_shas(rows: Iterable[EventRow]) -> list[str]:
    """Every flow a history names (events' flows and migrations' sources), first seen first."""
    found: dict[str, None] = {}
    for row in rows:
        if row.event == MIGRATE_EVENT:
            payload = migration_payload(row)
            if payload is not None:
                found.setdefault(payload["from_flow"])
        found.setdefault(row.flow_sha256)
    return list(found)


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

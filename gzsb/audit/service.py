"""Auditing stored histories: stream every application's events, replay them, bind the
data, and check the transparency log against the events and the signed checkpoints.

Functions the auditor console calls: ``find_application``, ``timeline``,
``verify_application``, ``FleetCheck`` (``run_verify``), ``whatif`` (gzsb.workflow.whatif),
``export_bundle``, ``fleet_status``.
"""

from __future__ import annotations

import hashlib
import logging
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.audit.fleet import (
    RANGE_IDS,
    can_fork,
    event_leaf_hash,
    event_leaves,
    pooled,
    replay_stream,
)
from gzsb.audit.log import cosigned_note, latest_checkpoint, tree
from gzsb.errors import NotFound
from gzsb.models import Application, AuditRun, FlowVersion, HistoryEvent, LogCheckpoint, LogLeaf, LogNode, LogState
from gzsb.store import history_rows
from gzsb.workflow.checkpoint import NoteError, Verifier, verify_checkpoint
from gzsb.workflow.history import EventRow, Redactor, Verdict, publish_leaf, utc_text
from gzsb.workflow.translog import EMPTY_ROOT, HASH_SIZE, ProofError, leaf_hash, node_hash, verify_inclusion

log = logging.getLogger(__name__)

MAX_NAMED = 20  # log problems named one by one before the rest are only counted


@dataclass(frozen=True)
class LogPolicy:
    """What a verification trusts: the pinned log key, the origin, and the witnesses required."""

    log_key: Verifier
    origin: str
    witness_keys: tuple[Verifier, ...] = ()
    require_witness: bool = False


def prefix_roots(leaves: bytes | bytearray, sizes: set[int]) -> dict[int, bytes]:
    """MTH of the first n leaves for every n in ``sizes``.

    Level by level: each level's perfect-subtree hashes come from the one below in one list
    comprehension over 64-byte pairs (one C hash call per node, no per-node Python stack work);
    a prefix root then combines the ≤ log2(n) perfect subtrees its size's binary digits name."""
    sha256 = hashlib.sha256
    levels = [bytes(leaves[: len(leaves) // HASH_SIZE * HASH_SIZE])]
    while len(levels[-1]) >= 2 * HASH_SIZE:
        below = memoryview(levels[-1])
        pairs = len(below) // (2 * HASH_SIZE)
        levels.append(b"".join([sha256(b"\x01" + below[i : i + 64]).digest() for i in range(0, pairs * 64, 64)]))
    out: dict[int, bytes] = {}
    for size in sizes:
        if size == 0:
            out[0] = EMPTY_ROOT
            continue
        if size * HASH_SIZE > len(levels[0]):
            continue
        # The perfect subtrees of [0, size), left to right: one per 1 bit, highest first.
        parts = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                index = start >> level
                parts.append(levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE])
                start += 1 << level
        root = parts[-1]
        for left in reversed(parts[:-1]):
            root = node_hash(left, root)
        out[size] = root
    return out


@dataclass
class FleetCheck:
    """One verify pass: iterate ``verdicts()`` (one per application, streamed), then read
    ``problems`` (the log's: missing, extra or rewritten leaves, checkpoint signature and root)."""

    session: Session
    redactor: Redactor | None = None
    policy: LogPolicy | None = None
    application_uid: str | None = None
    problems: list[str] = field(default_factory=list)
    checkpoint: LogCheckpoint | None = None
    log_size: int = 0
    applications: int = 0
    events: int = 0
    failed: int = 0
    unlogged: int = 0
    proven: int = 0  # one application: logged events checked for inclusion in the checkpoint
    failures_kept: int = MAX_NAMED
    failures: list[str] = field(default_factory=list)  # the first failed verdicts, described
    run: AuditRun | None = None
    jobs: int = 1  # processes replaying at once (a pool over id ranges when > 1)
    range_ids: int = RANGE_IDS  # application ids per task of the pool
    _leaves: bytearray = field(default_factory=bytearray)
    _filled: bytearray = field(default_factory=bytearray)

    def verdicts(self) -> Iterator[Verdict]:
        self.log_size = self.session.scalar(select(LogState.size)) or 0
        whole = self.application_uid is None
        if whole:
            self._leaves = bytearray(self.log_size * HASH_SIZE)
            self._filled = bytearray(self.log_size)
        if whole and self.jobs > 1 and can_fork(self.session.get_bind()):
            for part in pooled(self.session, self.redactor, self.jobs, self.range_ids):
                if not self._note_run(part.indexes, part.leaves):
                    for index, seq, owner, start in zip(
                        part.indexes, part.seqs, part.owners, range(0, len(part.leaves), HASH_SIZE), strict=True
                    ):
                        self._note_leaf(
                            part.verdicts[owner].application, index, seq, part.leaves[start : start + HASH_SIZE]
                        )
                self.unlogged += part.unlogged
                for verdict in part.verdicts:
                    self._count(verdict)
                    yield verdict
        else:
            for verdict, uid, raw, run in replay_stream(self.session, self.redactor, uid=self.application_uid):
                if whole and run is not None and self._claim_run(run[0], run[1]):
                    self._count(verdict)
                    yield verdict
                    continue
                for index, seq, leaf in event_leaves(uid, raw):
                    if index is None:
                        self.unlogged += 1
                    elif whole:
                        self._note_leaf(uid, index, seq, leaf)
                self._count(verdict)
                yield verdict
        self._check_log()

    def _count(self, verdict: Verdict) -> None:
        self.applications += 1
        self.events += verdict.events
        if not verdict.ok:
            self.failed += 1
            if len(self.failures) < self.failures_kept:
                self.failures.append(verdict.describe())

    def _note_run(self, indexes: array, leaves: bytearray) -> bool:
        """All of a task's leaves at once when their indexes are one unclaimed run below the log's
        size (events logged in application order); False: note them one by one."""
        count = len(indexes)
        if not count:
            return True
        first = indexes[0]
        if indexes != array("q", range(first, first + count)):
            return False
        return self._claim_run(first, leaves)

    def _claim_run(self, first: int, leaves: bytes | bytearray) -> bool:
        """Leaves for tree indexes first, first + 1, …: noted at once when all are unclaimed and
        below the log's size; False: the caller notes them one by one."""
        count = len(leaves) // HASH_SIZE
        if first < 0 or first + count > self.log_size:
            return False
        if self._filled.count(1, first, first + count):
            return False  # some index is claimed twice: the one-by-one path names it
        self._filled[first : first + count] = b"\x01" * count
        self._leaves[first * HASH_SIZE : (first + count) * HASH_SIZE] = leaves
        return True

    def _note_leaf(self, uid: str, index: int, seq: int, leaf: bytes | bytearray) -> None:
        if index >= self.log_size:
            return  # logged after this pass read the log's size
        if self._filled[index]:
            self._problem(f"tree index {index}: claimed by two events (application {uid} seq {seq})")
            return
        self._filled[index] = 1
        self._leaves[index * HASH_SIZE : (index + 1) * HASH_SIZE] = leaf

    def _problem(self, text: str) -> None:
        if len(self.problems) < MAX_NAMED:
            self.problems.append(text)
        elif len(self.problems) == MAX_NAMED:
            self.problems.append("… more log problems not listed")

    def _check_log(self) -> None:
        if self.application_uid is not None:
            self._check_application_leaves()
            return
        self._fill_publishes()
        missing: list[int] = []
        hole = self._filled.find(0)  # C scans for the holes: a clean log has none
        while hole != -1 and len(missing) <= MAX_NAMED:
            missing.append(hole)
            hole = self._filled.find(0, hole + 1)
        if missing:
            refs = self._refs(missing[:MAX_NAMED])
            for index in missing[:MAX_NAMED]:
                self._problem(f"tree index {index} ({refs.get(index, 'no leaf record')}): its event no longer exists")
        checkpoints = self._signed_checkpoints()
        sizes = {self.log_size} | {row.size for row in checkpoints if row.size <= self.log_size}
        roots = prefix_roots(self._leaves, sizes)
        if not missing and tree(self.session).root(self.log_size) != roots[self.log_size]:
            self._name_rewritten_leaves()
        self._check_checkpoints(checkpoints, roots)

    def _fill_publishes(self) -> None:
        # The versions named first: with them as values SQLite looks the few publish leaves up
        # by flow_version_id, where the join alone scanned every leaf of the log.
        versions = list(self.session.scalars(select(FlowVersion.id)))
        rows = self.session.execute(
            select(LogLeaf.idx, FlowVersion.flow, FlowVersion.sha256, FlowVersion.published_by,
                   FlowVersion.published_at, FlowVersion.yaml_text)
            .join(FlowVersion, FlowVersion.id == LogLeaf.flow_version_id)
            .where(LogLeaf.flow_version_id.in_(versions), LogLeaf.idx < self.log_size)
        )  # fmt: skip
        for index, flow, sha, by, at, text in rows:
            if hashlib.sha256(text.encode("utf-8")).hexdigest() != sha:
                self._problem(f"tree index {index} (publish of {flow}): the flow text no longer matches its SHA-256")
            self._filled[index] = 1
            self._leaves[index * HASH_SIZE : (index + 1) * HASH_SIZE] = leaf_hash(
                publish_leaf(flow, sha, by, utc_text(at))
            )

    def _refs(self, indexes: list[int]) -> dict[int, str]:
        rows = self.session.execute(
            select(LogLeaf.idx, LogLeaf.kind, LogLeaf.application_uid, LogLeaf.seq, LogLeaf.flow_version_id).where(
                LogLeaf.idx.in_(indexes)
            )
        )
        return {
            idx: f"application {uid} seq {seq}" if kind == "event" else f"publish of flow version {version}"
            for idx, kind, uid, seq, version in rows
        }

    def _name_rewritten_leaves(self) -> None:
        stored = self.session.execute(
            select(LogNode.idx, LogNode.hash)
            .where(LogNode.level == 0, LogNode.idx < self.log_size)
            .order_by(LogNode.idx)
        )
        bad = [
            idx for idx, value in stored if bytes(value) != bytes(self._leaves[idx * HASH_SIZE : (idx + 1) * HASH_SIZE])
        ]
        refs = self._refs(bad[:MAX_NAMED])
        for index in bad[:MAX_NAMED]:
            self._problem(f"tree index {index} ({refs.get(index, '?')}): the event no longer matches its logged leaf")
        if not bad:
            self._problem("the log's stored nodes do not match its leaves")

    def _signed_checkpoints(self) -> list[LogCheckpoint]:
        rows = list(self.session.scalars(select(LogCheckpoint).order_by(LogCheckpoint.size, LogCheckpoint.id)))
        if self.policy is None:
            return rows
        good = []
        for row in rows:
            try:
                verify_checkpoint(row.note, self.policy.log_key, origin=self.policy.origin)
            except NoteError as exc:
                self._problem(f"checkpoint {row.id} (size {row.size}): {exc}")
                continue
            good.append(row)
        return good

    def _check_checkpoints(self, checkpoints: list[LogCheckpoint], roots: dict[int, bytes]) -> None:
        target = None
        for row in reversed(checkpoints):
            note = cosigned_note(self.session, row)
            if self.policy is not None and self.policy.require_witness:
                try:
                    verify_checkpoint(
                        note, self.policy.log_key, self.policy.witness_keys, required_witnesses=1,
                        origin=self.policy.origin,
                    )  # fmt: skip
                except NoteError:
                    continue
            target = row
            break
        if target is None:
            if self.policy is not None and self.policy.require_witness:
                self._problem("no checkpoint cosigned by the required witness")
            return
        self.checkpoint = target
        if target.size > self.log_size:
            self._problem(f"checkpoint {target.id} has size {target.size}, but the log holds only {self.log_size}")
            return
        agreeing = 0
        for row in checkpoints:
            if row.size > self.log_size or row.size > target.size:
                continue
            if roots[row.size] != bytes(row.root):
                self._problem(
                    f"tree indexes {agreeing}..{row.size - 1}: the log's first {row.size} leaves do not give the root "
                    f"signed in checkpoint {row.id} (history below tree index {row.size} was rewritten)"
                )
                return
            agreeing = row.size

    def _check_application_leaves(self) -> None:
        """One application: each logged event's leaf must be in the latest checkpoint's tree."""
        uid = self.application_uid
        row = latest_checkpoint(self.session)
        if row is None:
            return
        self.checkpoint = row
        if self.policy is not None:
            try:
                verify_checkpoint(row.note, self.policy.log_key, origin=self.policy.origin)
            except NoteError as exc:
                self._problem(f"checkpoint {row.id}: {exc}")
                return
        merkle = tree(self.session)
        events = self.session.execute(
            select(HistoryEvent.seq, HistoryEvent.hash, HistoryEvent.log_index)
            .join(Application, Application.id == HistoryEvent.application_id)
            .where(Application.uid == uid, HistoryEvent.log_index < row.size)
            .order_by(HistoryEvent.seq)
        )
        for seq, digest, index in events:
            self.proven += 1
            try:
                proof = merkle.inclusion_proof(index, row.size)
                verify_inclusion(event_leaf_hash(uid, seq, digest), index, row.size, proof, bytes(row.root))
            except (ProofError, Exception) as exc:  # a TreeError is as bad: the log cannot prove it
                self._problem(f"tree index {index} (application {uid} seq {seq}): not in checkpoint {row.id}: {exc}")

    def begin(self, now: datetime | None = None) -> AuditRun:
        """Store the run as started (unfinished) before ``verdicts()``, so other app nodes see it."""
        self.run = AuditRun(started_at=now or datetime.now(UTC), scope=self.application_uid or "all", problems=[])
        self.session.add(self.run)
        self.session.commit()
        return self.run

    def progress(self) -> None:
        """Write the counts so far into the started run (a background run's progress)."""
        if self.run is not None:
            self.run.applications, self.run.events, self.run.failed = self.applications, self.events, self.failed
            self.session.commit()

    def record(self) -> AuditRun:
        """Store this pass (after ``verdicts()`` ran) as an AuditRun for the console: counts, the
        first failed applications, then the log's problems."""
        run = self.run or AuditRun(started_at=datetime.now(UTC), scope=self.application_uid or "all")
        run.finished_at = datetime.now(UTC)
        run.applications, run.events, run.failed = self.applications, self.events, self.failed
        run.checkpoint_size = self.checkpoint.size if self.checkpoint is not None else None
        run.ok = self.failed == 0 and not self.problems
        run.problems = list(self.failures) + list(self.problems)
        self.session.add(run)
        self.session.commit()
        return run


def default_redactor() -> Redactor | None:
    """The app's history redactor when there is an app context (the CLI, the console)."""
    if not has_app_context():
        return None
    return current_app.extensions.get("gzsb.redactor")


def verify_all(
    session: Session,
    application_uid: str | None = None,
    *,
    redactor: Redactor | None = None,
    policy: LogPolicy | None = None,
) -> Iterator[Verdict]:
    """Replay each application (or one) under its own flow version; one Verdict each. The
    log problems of the pass are dropped here: use FleetCheck to see them."""
    check = FleetCheck(session, redactor or default_redactor(), policy, application_uid)
    yield from check.verdicts()


def find_application(session: Session, uid: str) -> Application:
    app = session.scalars(select(Application).where(Application.uid == uid)).first()
    if app is None:
        raise NotFound(f"application {uid} does not exist")
    return app


def application_history(session: Session, uid: str) -> tuple[Application, list[EventRow]]:
    app = find_application(session, uid)
    return app, list(history_rows(session, app.id))

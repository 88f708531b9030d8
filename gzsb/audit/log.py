"""The transparency log in the database: the SQL node store, the sequencer, checkpoints
and the witness round.

``Engine.fire()`` never touches the log (no global lock on the hot path): it writes its
history event with ``log_index`` NULL. The sequencer (``integrate``), run by the worker's
periodic task and on demand, takes the log's one lock, gives the not-yet-logged events
their leaf indexes in event-id order (flow publishes first), appends their leaves and
the perfect-subtree nodes they complete, and commits, one batch per transaction.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.orm import Session

from gzsb.audit.fleet import event_leaf_hash
from gzsb.errors import ServiceError
from gzsb.models import (
    Application,
    FlowVersion,
    HistoryEvent,
    LogCheckpoint,
    LogCosignature,
    LogLeaf,
    LogNode,
    LogState,
)
from gzsb.workflow import witness as witness_mod
from gzsb.workflow.checkpoint import Checkpoint, Signer, Verifier, sign_checkpoint
from gzsb.workflow.history import publish_leaf, utc_text
from gzsb.workflow.translog import MerkleTree, NodeKey, TreeError, leaf_hash

log = logging.getLogger(__name__)

STATE_ID = 1
# pg_advisory_xact_lock key of the sequencer ("gzsblog" in ASCII).
ADVISORY_KEY = 0x677A73626C6F67
# get_many splits its IN list: long lists of row-value pairs slow both databases down.
READ_CHUNK = 500


class LogError(ServiceError):
    http_status = 409


class SqlNodeStore:
    """The NodeStore protocol on ``log_nodes`` and the one ``log_state`` row (not committed here)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def size(self) -> int:
        return self.session.scalar(select(LogState.size).where(LogState.id == STATE_ID)) or 0

    def get_many(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        wanted = list(keys)
        out: dict[NodeKey, bytes] = {}
        for start in range(0, len(wanted), READ_CHUNK):
            by_level: dict[int, list[int]] = {}
            for level, idx in wanted[start : start + READ_CHUNK]:
                by_level.setdefault(level, []).append(idx)
            # One (level = l AND idx IN …) term per level: both databases use the primary key for it,
            # where a row-value IN list is a scan on PostgreSQL.
            where = or_(*(and_(LogNode.level == level, LogNode.idx.in_(idxs)) for level, idxs in by_level.items()))
            rows = self.session.execute(select(LogNode.level, LogNode.idx, LogNode.hash).where(where))
            out.update({(level, idx): bytes(value) for level, idx, value in rows})
        return out

    def put_many(self, nodes: Mapping[NodeKey, bytes], old_size: int, new_size: int) -> None:
        moved = self.session.execute(
            update(LogState).where(LogState.id == STATE_ID, LogState.size == old_size).values(size=new_size)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise TreeError(f"concurrent append: the log no longer holds {old_size} leaves")
        driver_executemany(
            self.session,
            "INSERT INTO log_nodes (level, idx, hash) VALUES ({0}, {0}, {0})",
            [(level, idx, value) for (level, idx), value in nodes.items()],
        )


def driver_executemany(session: Session, statement: str, rows: list[tuple[object, ...]]) -> None:
    """One DB-API executemany in the session's transaction: SQLAlchemy's per-row parameter
    handling (Core and ORM bulk paths alike) costs more than the hashing and the database.
    ``{0}`` in ``statement`` stands for the driver's placeholder."""
    if not rows:
        return
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    connection.exec_driver_sql(statement.format(mark), rows)


def _lock(session: Session) -> None:
    """The sequencer's one lock, held until the transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_KEY})
    if session.get(LogState, STATE_ID) is None:
        session.add(LogState(id=STATE_ID, size=0))
        session.flush()
    if session.get_bind().dialect.name != "postgresql":
        # SQLite has one writer: taking the write lock now keeps batches from interleaving.
        session.execute(update(LogState).where(LogState.id == STATE_ID).values(size=LogState.size))


def tree(session: Session) -> MerkleTree:
    return MerkleTree(SqlNodeStore(session))


def integrate(session: Session, *, batch: int = 5000, max_batches: int | None = None) -> int:
    """Give every not-yet-logged publish and event a leaf; returns how many were appended."""
    session.commit()  # what the caller left pending is not ours to log
    added = batches = 0
    while max_batches is None or batches < max_batches:
        _lock(session)
        merkle = tree(session)
        start = merkle.size
        leaves: list[tuple[object, ...]] = []
        hashes: list[bytes] = []
        logged = select(LogLeaf.flow_version_id).where(LogLeaf.flow_version_id.is_not(None))
        publishes = session.execute(
            select(FlowVersion.id, FlowVersion.flow, FlowVersion.sha256, FlowVersion.published_by,
                   FlowVersion.published_at)
            .where(FlowVersion.id.not_in(logged)).order_by(FlowVersion.id)
        ).all()  # fmt: skip
        for version_id, flow, sha, by, at in publishes:
            hashes.append(leaf_hash(publish_leaf(flow, sha, by, utc_text(at))))
            leaves.append(("publish", None, None, version_id))
        events = session.execute(
            select(HistoryEvent.id, Application.uid, HistoryEvent.seq, HistoryEvent.hash)
            .join(Application, Application.id == HistoryEvent.application_id)
            .where(HistoryEvent.log_index.is_(None))
            .order_by(HistoryEvent.id)
            .limit(max(batch - len(hashes), 1))
        ).all()
        event_updates = []
        for event_id, uid, seq, digest in events:
            index = start + len(hashes)
            hashes.append(event_leaf_hash(uid, seq, digest))
            leaves.append(("event", uid, seq, None))
            event_updates.append((index, event_id))
        if not hashes:
            session.commit()
            break
        merkle.append(hashes)
        driver_executemany(
            session,
            "INSERT INTO log_leaves (idx, kind, application_uid, seq, flow_version_id, leaf_hash) "
            "VALUES ({0}, {0}, {0}, {0}, {0}, {0})",
            [(start + i, *leaf, h) for i, (leaf, h) in enumerate(zip(leaves, hashes, strict=True))],
        )
        driver_executemany(session, "UPDATE history_events SET log_index = {0} WHERE id = {0}", event_updates)
        session.commit()
        added += len(hashes)
        batches += 1
        if len(events) < batch - len(publishes):
            break
    if added:
        log.info("log: integrated %d leaves", added)
    return added


@dataclass(frozen=True)
class LogConfig:
    signer: Signer
    origin: str

    @property
    def verifier(self) -> Verifier:
        return self.signer.verifier()


def checkpoint(session: Session, config: LogConfig, *, batch: int = 5000) -> LogCheckpoint:
    """Integrate, then sign the tree head (a new row only when the tree grew)."""
    integrate(session, batch=batch)
    merkle = tree(session)
    size = merkle.size
    root = merkle.root(size)
    last = latest_checkpoint(session)
    if last is not None and last.size == size and bytes(last.root) == root:
        return last
    note = sign_checkpoint(Checkpoint(config.origin, size, root), config.signer)
    row = LogCheckpoint(size=size, root=root, note=note, created_at=datetime.now(UTC))
    session.add(row)
    session.commit()
    log.info("log: checkpoint %d at size %d", row.id, size)
    return row


def latest_checkpoint(session: Session, *, cosigned: bool = False) -> LogCheckpoint | None:
    query = select(LogCheckpoint).order_by(LogCheckpoint.id.desc()).limit(1)
    if cosigned:
        query = query.where(LogCheckpoint.id.in_(select(LogCosignature.checkpoint_id)))
    return session.scalars(query).first()


def cosigned_note(session: Session, row: LogCheckpoint) -> str:
    """The checkpoint's note with every witness line it has, else the log-signed note."""
    notes = session.scalars(
        select(LogCosignature.note).where(LogCosignature.checkpoint_id == row.id).order_by(LogCosignature.id.desc())
    ).first()
    return notes or row.note


def witness_round(session: Session, config: LogConfig, directory: Path) -> LogCosignature:
    """Hand the latest checkpoint and a consistency proof from the witness's last one to the
    witness functions; store the cosigned note. Raises LogError when the witness refuses."""
    row = latest_checkpoint(session)
    if row is None:
        raise LogError("no checkpoint yet: run `flask audit checkpoint` first")
    known = witness_mod.load_state(directory).get(config.origin)
    proof_text = None
    if known is not None:
        try:
            proof = tree(session).consistency_proof(min(known.size, row.size), row.size)
        except TreeError as exc:
            raise LogError(f"cannot prove consistency from size {known.size}: {exc}") from None
        proof_text = witness_mod.format_proof(known.size, proof)
    try:
        done = witness_mod.cosign(directory, config.verifier.encode(), row.note, proof_text)
    except witness_mod.WitnessError as exc:
        raise LogError(f"the witness refused checkpoint {row.id} (size {row.size}): {exc}") from None
    name = witness_mod.load_signer(directory).name
    cosig = LogCosignature(checkpoint_id=row.id, witness=name, note=done.note, cosigned_at=datetime.now(UTC))
    session.add(cosig)
    session.commit()
    log.info("log: checkpoint %d (size %d) cosigned by %s", row.id, row.size, name)
    return cosig


def root_b64(root: bytes) -> str:
    return base64.b64encode(root).decode("ascii")

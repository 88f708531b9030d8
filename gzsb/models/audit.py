"""The transparency log (leaves, nodes, checkpoints, cosignatures) and verify runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gzsb.extensions import db
from gzsb.models.core import utcnow

# --- the transparency log (issue 12) ------------------------------------------------------


class LogState(db.Model):
    """One row (id 1): the log's size. The sequencer locks it; appends move it with
    ``UPDATE … WHERE size = :old``, so two appenders can never interleave."""

    __tablename__ = "log_state"
    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)


class LogLeaf(db.Model):
    """What leaf ``idx`` refers to: a history event (application uid and seq) or a flow publish."""

    __tablename__ = "log_leaves"
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))  # "event" or "publish"
    application_uid: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    seq: Mapped[int | None] = mapped_column(nullable=True)
    flow_version_id: Mapped[int | None] = mapped_column(nullable=True, unique=True)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LogNode(db.Model):
    """Hash of the perfect subtree ``(level, idx)``; level 0 holds the leaf hashes."""

    __tablename__ = "log_nodes"
    level: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LogCheckpoint(db.Model):
    """A signed checkpoint (C2SP signed note); ``note`` gains witness lines when cosigned."""

    __tablename__ = "log_checkpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, index=True)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)


class LogCosignature(db.Model):
    """A witness's cosignature of a checkpoint: the cosigned note as the witness returned it."""

    __tablename__ = "log_cosignatures"
    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("log_checkpoints.id"), index=True)
    witness: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(Text)
    cosigned_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)


class AuditRun(db.Model):
    """One ``audit verify`` run over the database, for the auditor console's fleet view."""

    __tablename__ = "audit_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    started_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    scope: Mapped[str] = mapped_column(String(64), default="all")  # "all" or an application uid
    applications: Mapped[int] = mapped_column(default=0)
    events: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    checkpoint_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ok: Mapped[bool] = mapped_column(default=False)
    problems: Mapped[list[str]] = mapped_column(JSON, default=list)  # first failures and log problems

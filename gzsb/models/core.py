"""Accounts, applications, flow versions, history, outbox and timers: what the engine runs on.

Personal data is encrypted; lookups go through keyed blind indexes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gzsb.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uid() -> str:
    return uuid.uuid4().hex


class ConfirmationPoint(db.Model):
    __tablename__ = "confirmation_points"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(200), default="")
    office_hours: Mapped[str] = mapped_column(String(500), default="")
    # Disabled points take no new staff; they stay for the staff and applications they have.
    disabled_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)


class Account(db.Model):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="student")
    name: Mapped[str] = mapped_column(String(50))
    id_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_index: Mapped[str] = mapped_column(String(64), unique=True)
    mobile_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    mobile_index: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # Bumped on logout and password change: sessions carry it, stale ones stop working.
    session_epoch: Mapped[int] = mapped_column(default=0)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    confirmation_point_id: Mapped[int | None] = mapped_column(ForeignKey("confirmation_points.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    # Set with an admin's one-time password: nothing else opens until the owner picks one.
    must_change_password: Mapped[bool] = mapped_column(default=False)
    disabled_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)

    confirmation_point: Mapped[ConfirmationPoint | None] = relationship()


class FlowVersion(db.Model):
    """A published flow: immutable YAML text and its SHA-256."""

    __tablename__ = "flow_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    flow: Mapped[str] = mapped_column(String(64), index=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    yaml_text: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    published_by: Mapped[str] = mapped_column(String(64), default="")


class Application(db.Model):
    __tablename__ = "applications"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    flow_version_id: Mapped[int] = mapped_column(ForeignKey("flow_versions.id"))
    state: Mapped[str] = mapped_column(String(64), index=True)
    # Optimistic lock: every transition bumps it in an UPDATE … WHERE version = old.
    version: Mapped[int] = mapped_column(default=0)
    seq: Mapped[int] = mapped_column(default=0)
    head: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    confirmation_point_id: Mapped[int | None] = mapped_column(ForeignKey("confirmation_points.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)

    account: Mapped[Account] = relationship()
    flow_version: Mapped[FlowVersion] = relationship()

    __mapper_args__ = {"version_id_col": version}


class HistoryEvent(db.Model):
    """Append-only; each row's hash covers its content and the previous row's hash."""

    __tablename__ = "history_events"
    __table_args__ = (
        UniqueConstraint("application_id", "seq", name="uq_history_application_seq"),
        # The sequencer's queue: WHERE log_index IS NULL ORDER BY id.
        Index("ix_history_events_unlogged", "log_index", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    seq: Mapped[int]
    event: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[str] = mapped_column(String(64))
    to_state: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    guards: Mapped[str] = mapped_column(Text)  # canonical JSON
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON, sensitive fields keyed-hashed
    flow_sha256: Mapped[str] = mapped_column(String(64))
    at: Mapped[str] = mapped_column(String(32))  # UTC, ISO 8601 with microseconds
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # Redacted top-level data keys the step changed (canonical JSON, covered by the hash);
    # "" marks a legacy gzsb-history/1 event recorded before data binding.
    changes: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The transparency-log leaf index, set by the sequencer (NULL: not logged yet).
    log_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Outbox(db.Model):
    """Side effects written in the transition's transaction, sent by the worker after commit."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # Jobs: nobody queues the item again before this (a lease while it runs, or the delay
    # before a scheduled retry); the tick re-dispatches an unfinished item after it.
    lease_until: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    # When the work finished for good (an item with done_at is never dispatched again).
    done_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)


class Timer(db.Model):
    """A durable timer: fires ``event`` if the application is still in the state it was
    armed for (identified by the seq that entered it)."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_due", "fired_at", "due_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    state: Mapped[str] = mapped_column(String(64))
    armed_seq: Mapped[int]
    event: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True))
    fired_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32), default="")


class SmsMessage(db.Model):
    """Messages of the offline SMS adapter (shown on the development page)."""

    __tablename__ = "sms_messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    to_masked: Mapped[str] = mapped_column(String(20))
    to_enc: Mapped[bytes] = mapped_column(LargeBinary)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)


class OtpCode(db.Model):
    """An SMS verification code: stored hashed, short-lived, single use, few tries."""

    __tablename__ = "otp_codes"
    __table_args__ = (Index("ix_otp_target", "target_index", "purpose", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20))  # register / reset / appeal
    target_index: Mapped[str] = mapped_column(String(64))  # blind index of the mobile
    code_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(default=0)
    used_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)

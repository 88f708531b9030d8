"""Database models. Personal data is encrypted; lookups go through keyed blind indexes."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Enum, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
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


class RegistryRecord(db.Model):
    """The 学籍/学历 registry (imported by admins; an HTTP client in production)."""

    __tablename__ = "registry_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    id_number_index: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    school: Mapped[str] = mapped_column(String(100))
    major: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(20), default="专科")
    study_form: Mapped[str] = mapped_column(String(20), default="普通全日制")
    graduation_year: Mapped[int]
    photo: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class OtpCode(db.Model):
    """An SMS verification code: stored hashed, short-lived, single use, few tries."""

    __tablename__ = "otp_codes"
    __table_args__ = (Index("ix_otp_target", "target_index", "purpose", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20))  # register / reset
    target_index: Mapped[str] = mapped_column(String(64))  # blind index of the mobile
    code_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(default=0)
    used_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)


class Institution(db.Model):
    """A 招生院校 of the catalogue."""

    __tablename__ = "institutions"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100))

    majors: Mapped[list[Major]] = relationship(back_populates="institution", order_by="Major.code")


class Major(db.Model):
    """A 招生专业 offered by one institution."""

    __tablename__ = "majors"
    __table_args__ = (UniqueConstraint("institution_id", "code", name="uq_major_institution_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    places: Mapped[int] = mapped_column(default=0)

    institution: Mapped[Institution] = relationship(back_populates="majors")


class CorrectionRequest(db.Model):
    """A student's report that their 学籍/学历 record is wrong, for the registrar's queue."""

    __tablename__ = "correction_requests"
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    registry_record_id: Mapped[int | None] = mapped_column(ForeignKey("registry_records.id"), nullable=True)
    confirmation_point_id: Mapped[int | None] = mapped_column(ForeignKey("confirmation_points.id"), nullable=True)
    problem: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


# --- uploads ---


class Upload(db.Model):
    """A stored file of an application (identity images, materials): checked, re-encoded,
    kept under a random key; ``delete_after`` is when the retention job may delete it."""

    __tablename__ = "uploads"
    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # photo / id_card / material / …
    storage_key: Mapped[str] = mapped_column(String(200), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    mimetype: Mapped[str] = mapped_column(String(32))
    size: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    delete_after: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)


# --- registration forms ---


class RegistrationForm(db.Model):
    """The 报名表 of an approved application: its serial (assigned once) and the cached PDF.

    ``digest`` is the content digest the stored PDF was made from; when the application's
    form content no longer has that digest the PDF is stale and rendered again. ``issued``
    lists every digest a PDF was handed out for, so the verify page can tell a genuine but
    outdated paper (内容已变更) from a forged one (无效).
    """

    __tablename__ = "registration_forms"
    __table_args__ = (UniqueConstraint("year", "point_code", "number", name="uq_registration_forms_number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), unique=True)
    serial: Mapped[str] = mapped_column(String(32), unique=True)
    year: Mapped[int]
    point_code: Mapped[str] = mapped_column(String(16))
    number: Mapped[int]
    digest: Mapped[str] = mapped_column(String(64), default="")
    layout: Mapped[int] = mapped_column(default=0)
    # Loaded only when served: status checks on every page view need the digest alone.
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    rendered_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    render_ms: Mapped[int] = mapped_column(default=0)
    issued: Mapped[list[str]] = mapped_column(JSON, default=list)
    requested_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    requested_digest: Mapped[str] = mapped_column(String(64), default="")
    failed_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)


# --- payments ---


class OrderStatus(enum.StrEnum):
    """open: payable until its deadline; paid: by the trade it names; expired: its deadline
    passed unpaid (the flow's timer); closed: replaced or withdrawn without payment."""

    OPEN = "open"
    PAID = "paid"
    EXPIRED = "expired"
    CLOSED = "closed"


class PaymentOrder(db.Model):
    """An order created by 【去支付】 (the create_order step), kept after the application moves
    on so that a late payment for it can still be matched and recorded for refund. The one
    record of an order: pages, steps and the 报名表 read it through ``gzsb.payments.service``."""

    __tablename__ = "payment_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    amount_fen: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    status: Mapped[OrderStatus] = mapped_column(
        Enum(OrderStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=OrderStatus.OPEN,
    )
    deadline: Mapped[datetime] = mapped_column(db.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    # When it stopped being open: paid, expired or closed.
    closed_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    # The gateway trade that paid it (set in the same transaction as payment_succeeded).
    gateway: Mapped[str] = mapped_column(String(32), default="")
    trade_no: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(20), default="")


class Payment(db.Model):
    """Money a gateway says it received: one row per gateway trade, whatever happens to the
    order. ``paid`` paid the order; ``refund_pending`` arrived for an order that was expired
    or already paid and must go back to the payer; ``received`` is being applied."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("gateway", "trade_no", name="uq_payments_gateway_trade_no"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    gateway: Mapped[str] = mapped_column(String(32))
    trade_no: Mapped[str] = mapped_column(String(64))
    order_number: Mapped[str] = mapped_column(String(64), index=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), index=True)
    amount_fen: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(20), default="")
    status: Mapped[str] = mapped_column(String(16), default="received")
    reason: Mapped[str] = mapped_column(Text, default="")
    paid_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    received_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)


class PaymentNotification(db.Model):
    """Every notify whose signature verified, with what we did about it (rejected ones with a
    bad signature only go to the security log: their content cannot be trusted)."""

    __tablename__ = "payment_notifications"
    __table_args__ = (Index("ix_payment_notifications_trade", "gateway", "trade_no"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    gateway: Mapped[str] = mapped_column(String(32))
    trade_no: Mapped[str] = mapped_column(String(64))
    order_number: Mapped[str] = mapped_column(String(64))
    notify_id: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)


class SandboxTrade(db.Model):
    """The sandbox gateway's own ledger (it would live on the gateway's servers): one trade
    per merchant order and channel, its status and its notify delivery."""

    __tablename__ = "sandbox_trades"
    __table_args__ = (
        UniqueConstraint("merchant_id", "out_trade_no", "channel", name="uq_sandbox_trades_merchant_order_channel"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    trade_no: Mapped[str] = mapped_column(String(64), unique=True)
    merchant_id: Mapped[str] = mapped_column(String(32))
    out_trade_no: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(200))
    amount_fen: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    notify_url: Mapped[str] = mapped_column(String(500))
    return_url: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), default="WAIT_BUYER_PAY")
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    notify_attempts: Mapped[int] = mapped_column(default=0)
    notify_acked_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    last_notify_result: Mapped[str] = mapped_column(String(200), default="")


# --- admin: accounts and 确认点 ---


class AdminAction(db.Model):
    """Append-only record of every admin change (who, when, what, to what), written in the
    change's transaction; personal fields in ``details`` are masked."""

    __tablename__ = "admin_actions"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(64))  # account:<id> or cli:<OS user>
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- admin: flow versions, publications, proposals (issue 11) ---


class FlowLive(db.Model):
    """Which version of a flow new applications start on: one row per flow name, moved by
    every publish (re-publishing an earlier version is how a flow is rolled back)."""

    __tablename__ = "flow_live"
    flow: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("flow_versions.id"))
    since: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)


class FlowPublication(db.Model):
    """Append-only: every time a version was made live, by whom and who approved it."""

    __tablename__ = "flow_publications"
    id: Mapped[int] = mapped_column(primary_key=True)
    flow: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("flow_versions.id"), index=True)
    by: Mapped[str] = mapped_column(String(64))  # account:<id> or cli:<name>
    approved_by: Mapped[str] = mapped_column(String(64), default="")
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("flow_proposals.id"), nullable=True)
    previous_version_id: Mapped[int | None] = mapped_column(ForeignKey("flow_versions.id"), nullable=True)
    at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)


class FlowProposal(db.Model):
    """A flow edit waiting for a second admin: published only when someone else approves it."""

    __tablename__ = "flow_proposals"
    id: Mapped[int] = mapped_column(primary_key=True)
    flow: Mapped[str] = mapped_column(String(64))
    yaml_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    proposed_by: Mapped[str] = mapped_column(String(64))
    proposed_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")
    # The live version the diff and impact were computed against, and what they said then.
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("flow_versions.id"), nullable=True)
    diff: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    impact: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="proposed", index=True)
    decided_by: Mapped[str] = mapped_column(String(64), default="")
    decided_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    migrate: Mapped[bool] = mapped_column(default=False)
    mapping: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("flow_versions.id"), nullable=True)
    migration: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the summary, when migrated


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


# --- identity: face comparisons per ID number per day (issue 13) ---


class FaceAttemptDay(db.Model):
    """Face comparisons started by one ID number (its blind index) on one Beijing day.

    Raised with one INSERT … ON CONFLICT DO UPDATE … WHERE n < cap RETURNING statement, so
    parallel uploads can never pass the cap together.
    """

    __tablename__ = "face_attempt_days"
    id_number_index: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, Beijing time
    count: Mapped[int] = mapped_column(default=0)

"""Orders, payments, gateway notifications and the sandbox gateway's trades."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gzsb.extensions import db
from gzsb.models.core import utcnow

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
    # The payment in flight (issue 15): the gateway and channel the payer was sent to, and
    # when; a second payment is refused while that gateway order may still take money.
    started_gateway: Mapped[str] = mapped_column(String(32), default="")
    started_channel: Mapped[str] = mapped_column(String(20), default="")
    started_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)
    # When the gateway confirmed it closed its order (expiry, or a change of channel).
    gateway_closed_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)


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
    # The automatic refund of a refund_pending payment: its idempotent number at the gateway,
    # "" / pending / success / failed, and the gateway's last word.
    refund_no: Mapped[str] = mapped_column(String(64), default="")
    refund_status: Mapped[str] = mapped_column(String(16), default="")
    refund_error: Mapped[str] = mapped_column(Text, default="")
    refunded_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)


class PaymentNotification(db.Model):
    """Every notify whose signature verified, with what we did about it (rejected ones with a
    bad signature only go to the security log: their content cannot be trusted)."""

    __tablename__ = "payment_notifications"
    __table_args__ = (
        Index("ix_payment_notifications_trade", "gateway", "trade_no"),
        Index("ix_payment_notifications_notify_id", "gateway", "notify_id"),
    )
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
    # A refund by the merchant (one per trade here: the whole amount, idempotent by number).
    refund_no: Mapped[str] = mapped_column(String(64), default="")
    refunded_fen: Mapped[int] = mapped_column(default=0)
    refunded_at: Mapped[datetime | None] = mapped_column(db.DateTime(timezone=True), nullable=True)

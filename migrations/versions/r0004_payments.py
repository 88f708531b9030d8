"""payments: orders, gateway notifications, refunds

Revision ID: r0004
Revises: r0003
"""

import sqlalchemy as sa
from alembic import op

revision = "r0004"
down_revision = "r0003"
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _application(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["application_id"], ["applications.id"], name=op.f(f"fk_{table}_application_id_applications")
    )


def upgrade() -> None:
    op.create_table(
        "payment_orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _when("deadline"),
        _when("created_at"),
        _when("closed_at", nullable=True),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("trade_no", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        _application("payment_orders"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_orders")),
        sa.UniqueConstraint("number", name=op.f("uq_payment_orders_number")),
    )
    op.create_index(op.f("ix_payment_orders_application_id"), "payment_orders", ["application_id"])

    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("trade_no", sa.String(length=64), nullable=False),
        sa.Column("order_number", sa.String(length=64), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _when("paid_at", nullable=True),
        _when("received_at"),
        _when("settled_at", nullable=True),
        _application("payments"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("gateway", "trade_no", name=op.f("uq_payments_gateway_trade_no")),
    )
    op.create_index(op.f("ix_payments_order_number"), "payments", ["order_number"])
    op.create_index(op.f("ix_payments_application_id"), "payments", ["application_id"])

    op.create_table(
        "payment_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("trade_no", sa.String(length=64), nullable=False),
        sa.Column("order_number", sa.String(length=64), nullable=False),
        sa.Column("notify_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        _when("received_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_notifications")),
    )
    op.create_index(op.f("ix_payment_notifications_trade"), "payment_notifications", ["gateway", "trade_no"])

    op.create_table(
        "sandbox_trades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trade_no", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("out_trade_no", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("amount_fen", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("notify_url", sa.String(length=500), nullable=False),
        sa.Column("return_url", sa.String(length=500), nullable=False),
        _when("expires_at"),
        sa.Column("status", sa.String(length=20), nullable=False),
        _when("created_at"),
        _when("paid_at", nullable=True),
        sa.Column("notify_attempts", sa.Integer(), nullable=False),
        _when("notify_acked_at", nullable=True),
        sa.Column("last_notify_result", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_trades")),
        sa.UniqueConstraint("trade_no", name=op.f("uq_sandbox_trades_trade_no")),
        sa.UniqueConstraint(
            "merchant_id", "out_trade_no", "channel", name=op.f("uq_sandbox_trades_merchant_order_channel")
        ),
    )


def downgrade() -> None:
    op.drop_table("sandbox_trades")
    op.drop_index(op.f("ix_payment_notifications_trade"), table_name="payment_notifications")
    op.drop_table("payment_notifications")
    op.drop_index(op.f("ix_payments_application_id"), table_name="payments")
    op.drop_index(op.f("ix_payments_order_number"), table_name="payments")
    op.drop_table("payments")
    op.drop_index(op.f("ix_payment_orders_application_id"), table_name="payment_orders")
    op.drop_table("payment_orders")

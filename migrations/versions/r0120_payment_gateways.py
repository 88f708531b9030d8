"""payments: the payment in flight, automatic refunds, notify ids, sandbox refunds (issue 15)

Revision ID: r0120
Revises: r0122
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0120"
down_revision = "r0122"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("payment_orders") as batch:
        batch.add_column(sa.Column("started_gateway", sa.String(length=32), nullable=False, server_default=""))
        batch.add_column(sa.Column("started_channel", sa.String(length=20), nullable=False, server_default=""))
        batch.add_column(sa.Column("started_at", TZ, nullable=True))
        batch.add_column(sa.Column("gateway_closed_at", TZ, nullable=True))
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("refund_no", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("refund_status", sa.String(length=16), nullable=False, server_default=""))
        batch.add_column(sa.Column("refund_error", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("refunded_at", TZ, nullable=True))
    with op.batch_alter_table("sandbox_trades") as batch:
        batch.add_column(sa.Column("refund_no", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("refunded_fen", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("refunded_at", TZ, nullable=True))
    op.create_index("ix_payment_notifications_notify_id", "payment_notifications", ["gateway", "notify_id"])


def downgrade() -> None:
    op.drop_index("ix_payment_notifications_notify_id", table_name="payment_notifications")
    with op.batch_alter_table("sandbox_trades") as batch:
        for name in ("refunded_at", "refunded_fen", "refund_no"):
            batch.drop_column(name)
    with op.batch_alter_table("payments") as batch:
        for name in ("refunded_at", "refund_error", "refund_status", "refund_no"):
            batch.drop_column(name)
    with op.batch_alter_table("payment_orders") as batch:
        for name in ("gateway_closed_at", "started_at", "started_channel", "started_gateway"):
            batch.drop_column(name)

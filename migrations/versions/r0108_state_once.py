"""state kept once: the payment_orders row is the only order record; outbox job leases

Revision ID: r0108
Revises: r0110

Data: every ``applications.data["order"]`` (and ``data["expired_orders"]``) is folded into
``payment_orders`` (a row is created when the step ran without one, a paid copy marks the
row paid), then removed from the JSON: pages and steps read the row from now on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "r0108"
down_revision = "r0110"
branch_labels = None
depends_on = None

ORDER_KEYS = ("order", "expired_orders")

applications = sa.table("applications", sa.column("id", sa.Integer), sa.column("data", sa.JSON))
orders = sa.table(
    "payment_orders",
    sa.column("id", sa.Integer),
    sa.column("number", sa.String),
    sa.column("application_id", sa.Integer),
    sa.column("amount_fen", sa.Integer),
    sa.column("currency", sa.String),
    sa.column("status", sa.String),
    sa.column("deadline", sa.DateTime(timezone=True)),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("closed_at", sa.DateTime(timezone=True)),
    sa.column("gateway", sa.String),
    sa.column("trade_no", sa.String),
    sa.column("channel", sa.String),
)


def _when(text: Any) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _fold(conn: sa.Connection, application_id: int, copy: dict[str, Any], status: str) -> None:
    """Make the row of this JSON copy exist and agree with it (the row wins where both know)."""
    number = copy.get("number")
    if not number:
        return
    row = conn.execute(sa.select(orders.c.id, orders.c.status).where(orders.c.number == number)).first()
    closed = _when(copy.get("paid_at")) or (_when(copy.get("deadline")) if status == "expired" else None)
    if row is None:
        conn.execute(
            orders.insert().values(
                number=number,
                application_id=application_id,
                amount_fen=int(copy.get("amount_fen") or 0),
                currency=copy.get("currency") or "CNY",
                status=status,
                deadline=_when(copy.get("deadline")) or datetime.now(UTC),
                created_at=_when(copy.get("created_at")) or datetime.now(UTC),
                closed_at=closed,
                gateway=copy.get("gateway", ""),
                trade_no=copy.get("trade_no", ""),
                channel=copy.get("channel", ""),
            )
        )
    elif row.status == "open" and status != "open":
        conn.execute(
            orders.update()
            .where(orders.c.id == row.id)
            .values(
                status=status,
                closed_at=closed,
                gateway=copy.get("gateway", ""),
                trade_no=copy.get("trade_no", ""),
                channel=copy.get("channel", ""),
            )
        )


def _fold_order_copies() -> None:
    conn = op.get_bind()
    for app_id, data in conn.execute(sa.select(applications.c.id, applications.c.data)).all():
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict) or not any(key in data for key in ORDER_KEYS):
            continue
        for expired in data.get("expired_orders") or []:
            _fold(conn, app_id, expired, "expired")
        current = data.get("order") or {}
        _fold(conn, app_id, current, "paid" if current.get("status") == "paid" else "open")
        rest = {key: value for key, value in data.items() if key not in ORDER_KEYS}
        conn.execute(applications.update().where(applications.c.id == app_id).values(data=rest))


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("done_at", sa.DateTime(timezone=True), nullable=True))
    _fold_order_copies()


def downgrade() -> None:
    # The JSON copies are not rebuilt: the rows hold everything they held.
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("done_at")
        batch.drop_column("lease_until")

"""`flask payments refunds`: payments received from the gateways that must go back."""

from __future__ import annotations

import logging

import click
from flask.cli import AppGroup
from sqlalchemy import select

from gzsb.extensions import db
from gzsb.models import Application, Payment

log = logging.getLogger(__name__)
group = AppGroup("payments", help="Payments received from the gateways.")


@group.command("refunds")
@click.option("--all", "show_all", is_flag=True, help="Also the ones already refunded.")
def payments_refunds(show_all: bool) -> None:
    """Money that arrived for an expired or already-paid order and must go back to the payer."""
    statuses = ("refund_pending", "refunded") if show_all else ("refund_pending",)
    rows = db.session.execute(
        select(Payment, Application.uid)
        .join(Application, Application.id == Payment.application_id)
        .where(Payment.status.in_(statuses))
        .order_by(Payment.received_at)
    ).all()
    for payment, uid in rows:
        yuan = f"{payment.amount_fen // 100}.{payment.amount_fen % 100:02d}"
        click.echo(
            f"{payment.received_at:%Y-%m-%d %H:%M} {payment.status} application {uid} order {payment.order_number} "
            f"{payment.gateway}/{payment.trade_no} {yuan} {payment.currency}: {payment.reason}"
        )
    click.echo(f"{len(rows)} payment(s) to refund" if not show_all else f"{len(rows)} payment(s)")

"""`flask payments refunds` (money that must go back), `flask payments retry-refund` (after the
gateway refused one) and `flask payments reconcile` (对账)."""

from __future__ import annotations

import logging
from datetime import date

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from gzsb.bootstrap import engine
from gzsb.errors import ServiceError
from gzsb.extensions import db
from gzsb.models import Application, Payment
from gzsb.payments import settle

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
        refused = (
            f" [refund {payment.refund_no} refused: {payment.refund_error}]"
            if payment.refund_status == "failed"
            else ""
        )
        click.echo(
            f"{payment.received_at:%Y-%m-%d %H:%M} payment {payment.id} {payment.status} application {uid} "
            f"order {payment.order_number} {payment.gateway}/{payment.trade_no} {yuan} {payment.currency}: "
            f"{payment.reason}{refused}"
        )
    click.echo(f"{len(rows)} payment(s) to refund" if not show_all else f"{len(rows)} payment(s)")


@group.command("retry-refund")
@click.argument("payment_id", type=int)
def payments_retry_refund(payment_id: int) -> None:
    """Queue again a refund the gateway refused (listed by `refunds` as "refused")."""
    try:
        payment = settle.retry_refund(db.session, payment_id)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"refund {payment.refund_no} of payment {payment.id} queued again; the worker sends it")


@group.command("reconcile")
@click.option("--date", "day", required=True, help="The Beijing day of the statement, YYYY-MM-DD.")
@click.option("--apply", "apply", is_flag=True, help="Fetch and apply payments the gateway has and we lack.")
def payments_reconcile(day: str, apply: bool) -> None:
    """Compare our payments with each gateway's daily statement (对账单); exit 1 on differences."""
    try:
        wanted = date.fromisoformat(day)
    except ValueError:
        raise click.BadParameter("YYYY-MM-DD", param_hint="--date") from None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found = settle.reconcile(app, db.session, engine(), wanted, apply=apply, now=app.extensions["gzsb.clock"]())
    for diff in found:
        click.echo(f"{diff.gateway} {diff.kind} order {diff.order_number} trade {diff.trade_no}: {diff.detail}")
    click.echo(f"{len(found)} difference(s) on {wanted}" + (" (missing payments applied)" if apply and found else ""))
    if found and not apply:
        raise SystemExit(1)

"""The order record: one ``payment_orders`` row per order, the only place an order lives.

Steps change it through the services they are given (``gzsb.enrollment.service.Services``),
pages and the 报名表 read it through ``current`` / ``describe``; the notify handler locks
and matches the same row.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gzsb.common.beijing import as_utc
from gzsb.models import OrderStatus, Outbox, Payment, PaymentOrder
from gzsb.worker.outbox import PAYMENT_CLOSE

log = logging.getLogger(__name__)

# An application's current order: the newest one not expired or closed.
LIVE = (OrderStatus.OPEN, OrderStatus.PAID)


def current(session: Session, application_id: int) -> PaymentOrder | None:
    return session.scalars(
        select(PaymentOrder)
        .where(PaymentOrder.application_id == application_id, PaymentOrder.status.in_(LIVE))
        .order_by(PaymentOrder.id.desc())
    ).first()


def expired(session: Session, application_id: int) -> list[PaymentOrder]:
    return list(
        session.scalars(
            select(PaymentOrder)
            .where(PaymentOrder.application_id == application_id, PaymentOrder.status == OrderStatus.EXPIRED)
            .order_by(PaymentOrder.id)
        )
    )


def _text(moment: datetime | None) -> str:
    return as_utc(moment).isoformat() if moment is not None else ""


def describe(order: PaymentOrder | None) -> dict[str, Any]:
    """The order as plain JSON values (pages, the 报名表's content digest); {} for none."""
    if order is None:
        return {}
    paid = order.status == OrderStatus.PAID
    return {
        "number": order.number,
        "amount_fen": order.amount_fen,
        "currency": order.currency,
        "status": OrderStatus(order.status).value,
        "created_at": _text(order.created_at),
        "deadline": _text(order.deadline),
        "paid_at": _text(order.closed_at) if paid else "",
        "trade_no": order.trade_no,
        "channel": order.channel,
        "gateway": order.gateway,
    }


def open_order(
    session: Session,
    application_id: int,
    number: str,
    amount_fen: int,
    currency: str,
    deadline: datetime,
    now: datetime,
) -> PaymentOrder:
    order = PaymentOrder(
        number=number,
        application_id=application_id,
        amount_fen=amount_fen,
        currency=currency,
        status=OrderStatus.OPEN,
        deadline=deadline,
        created_at=now,
    )
    session.add(order)
    session.flush()
    return order


def pay(session: Session, number: str, *, gateway: str, trade_no: str, channel: str, now: datetime) -> bool:
    """Mark the open order paid by this trade, and the trade's received money as its payment,
    in the caller's transaction. False when the order was not open."""
    changed = session.execute(
        update(PaymentOrder)
        .where(PaymentOrder.number == number, PaymentOrder.status == OrderStatus.OPEN)
        .values(status=OrderStatus.PAID, closed_at=now, gateway=gateway, trade_no=trade_no, channel=channel)
        .execution_options(synchronize_session="fetch")
    ).rowcount
    if gateway:
        session.execute(
            update(Payment)
            .where(Payment.gateway == gateway, Payment.trade_no == trade_no)
            .values(status="paid", settled_at=now, reason="")
            .execution_options(synchronize_session="fetch")
        )
    return bool(changed)


def expire(session: Session, application_id: int, now: datetime) -> PaymentOrder | None:
    """The application's open order runs out of time: expired (kept for late payments)."""
    order = current(session, application_id)
    if order is None or order.status != OrderStatus.OPEN:
        return None
    order.status, order.closed_at = OrderStatus.EXPIRED, now
    if order.started_channel:
        # The gateway's order must stop taking money too: the worker closes it after commit.
        session.add(
            Outbox(
                kind=PAYMENT_CLOSE,
                application_id=application_id,
                payload={"order": order.number, "channel": order.started_channel},
            )
        )
    session.flush()
    log.info("order %s expired unpaid", order.number)
    return order

"""Our side of 网上支付: send the payer to a gateway, take its notifies, tell the result.

``handle_notify`` is the one place money becomes a state change. It verifies the gateway's
signature, then that merchant, currency, order number and amount match one of our orders,
and that the status means paid; only then does it fire ``payment_succeeded``. It is
idempotent under any number of repeats, concurrent or late:

1. the received money is written first, one ``payments`` row per (gateway, trade_no) — the
   UNIQUE constraint makes concurrent duplicates collapse into one row, and money once
   recorded is never lost;
2. the transition runs through the engine, which locks the application row; the step
   marks the order and that ``payments`` row paid in the same transaction, so a duplicate
   that loses the race finds the order paid by this very trade and stops;
3. money for an order that is expired, already paid by another trade, or paid after its
   deadline is kept with status ``refund_pending``.

A notify that fails any check gets the gateway's failure reply, changes nothing, and
leaves a line in the ``gzsb.common.security`` log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gzsb.adapters import payments_alipay, payments_sandbox, payments_wechat  # noqa: F401 - they register
from gzsb.adapters.payments import (
    BadNotification,
    Notification,
    PaymentRequest,
    gateway,
    gateway_for_channel,
)
from gzsb.common.beijing import as_utc
from gzsb.errors import ConflictError, GuardRefused, InvalidInput, NotFound
from gzsb.models import Application, OrderStatus, Payment, PaymentNotification, PaymentOrder
from gzsb.payments import orders
from gzsb.payments.names import ORDER_OPEN, PAYMENT_SUCCEEDED
from gzsb.worker import outbox
from gzsb.workflow.engine import Actor, Engine

log = logging.getLogger(__name__)
security_log = logging.getLogger("gzsb.common.security")

CHANNELS = {"alipay": "支付宝", "wechat": "微信支付", "unionpay": "银联"}
SUBJECT = "天津市高职升本报名考试费"
ACTOR = Actor.system("payments")
# Rounds of "look, then fire" when others keep moving the application (each loser re-reads).
APPLY_ROUNDS = 3


# -- orders as the student sees them ----------------------------------------------------------


def own_order(session: Session, account_id: int, number: str) -> PaymentOrder:
    """The order ``number`` if it belongs to this account's application, else 404 (the same
    answer for someone else's order and for no order at all)."""
    order = session.scalars(
        select(PaymentOrder)
        .join(Application, Application.id == PaymentOrder.application_id)
        .where(PaymentOrder.number == number, Application.account_id == account_id)
    ).first()
    if order is None:
        raise NotFound(f"order {number!r} is not an order of account {account_id}", public="订单不存在")
    return order


def channels(config: Any) -> dict[str, str]:
    """The channels the student may choose (those a gateway is configured for), with names."""
    return {code: name for code, name in CHANNELS.items() if code in config["PAYMENT_CHANNELS"]}


def payable(session: Session, order: PaymentOrder, now: datetime) -> str | None:
    """Why the order cannot be paid now (Chinese), or None."""
    if order.status == OrderStatus.PAID:
        return "该订单已支付"
    if order.status != OrderStatus.OPEN:
        return "该订单已超过支付期限，请返回流程页面重新下单"
    if as_utc(now) >= as_utc(order.deadline):
        return "该订单已超过支付期限"
    application = session.get(Application, order.application_id)
    live = orders.current(session, order.application_id)
    if application is None or application.state != ORDER_OPEN or live is None or live.id != order.id:
        return "该订单当前不能支付，请返回流程页面查看"
    return None


def start_payment(
    app: Any,
    session: Session,
    order: PaymentOrder,
    channel: str,
    notify_url: str,
    return_url: str,
    now: datetime,
    client_ip: str = "",
) -> str:
    """The URL of the chosen gateway's cashier for this order."""
    if channel not in channels(app.config):
        raise InvalidInput(f"unknown payment channel {channel!r}", {"channel": ["请选择支付方式"]})
    reason = payable(session, order, now)
    if reason is not None:
        raise ConflictError(f"order {order.number} is not payable: {order.status}", public=reason)
    gw = gateway_for_channel(channel, app)
    url = gw.start(
        PaymentRequest(
            order_number=order.number,
            amount_fen=order.amount_fen,
            currency=order.currency,
            subject=SUBJECT,
            channel=channel,
            notify_url=notify_url,
            return_url=return_url,
            expires_at=as_utc(order.deadline),
            client_ip=client_ip,
        )
    )
    log.info("order %s: payment started with %s (%s)", order.number, gw.name, channel)
    return url


def current_order(session: Session, application_id: int) -> dict[str, Any]:
    """The application's current order as pages and the 报名表 print it ({} for none)."""
    return orders.describe(orders.current(session, application_id))


def expired_orders(session: Session, application_id: int) -> list[dict[str, Any]]:
    return [orders.describe(order) for order in orders.expired(session, application_id)]


def refunds(session: Session, application_id: int) -> list[Payment]:
    """Money being sent back, or sent back, to this applicant (the payment pages show it)."""
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.application_id == application_id, Payment.status.in_(("refund_pending", "refunded")))
            .order_by(Payment.id)
        )
    )


def payments_of(session: Session, order_number: str) -> list[Payment]:
    return list(session.scalars(select(Payment).where(Payment.order_number == order_number).order_by(Payment.id)))


@dataclass(frozen=True)
class Result:
    """What the result page says: paid / processing / refund / expired / unpaid."""

    status: str
    order: PaymentOrder


def local_result(session: Session, order: PaymentOrder, channel: str, gateway_says_paid: bool = False) -> Result:
    """Our own records only (the polling endpoint's answer). A payment made with this channel
    that is being sent back says 退款, even when the order was paid the other way."""
    session.refresh(order)
    mine = select(Payment.status).where(Payment.order_number == order.number)
    if channel:
        mine = mine.where(Payment.channel == channel)
    statuses = set(session.scalars(mine))
    if statuses & {"refund_pending", "refunded"} and "paid" not in statuses:
        return Result("refund", order)
    if order.status == OrderStatus.PAID:
        return Result("paid", order)
    if order.status == OrderStatus.EXPIRED:
        return Result("expired", order)
    return Result("processing" if gateway_says_paid else "unpaid", order)


# -- notifies -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotifyOutcome:
    accepted: bool  # the gateway gets its success reply and stops sending
    outcome: str  # paid / duplicate / refund_pending / ignored / rejected: … / retry
    reply: str


def configured_gateways(config: Any) -> set[str]:
    return set(config["PAYMENT_CHANNELS"].values())


def handle_notify(
    app: Any,
    session: Session,
    eng: Engine,
    gateway_name: str,
    params: dict[str, str],
    now: datetime,
    source: str = "",
    headers: dict[str, str] | None = None,
    body: str = "",
) -> NotifyOutcome:
    """Verify and apply one notify. Makes no network call: refunds and gateway closes it
    decides on go into the outbox, for the worker."""
    config = app.config
    if gateway_name not in configured_gateways(config):
        security_log.warning("payment notify for unknown gateway %r from %s refused", gateway_name, source)
        return NotifyOutcome(False, "rejected: unknown gateway", "fail")
    gw = gateway(gateway_name, app)
    try:
        notification = gw.verify_notify(params, headers, body)
    except BadNotification as exc:
        security_log.warning("payment notify from %s (%s) refused: %s", source, gateway_name, exc)
        return NotifyOutcome(False, "rejected: signature", gw.failure_reply)
    if notification.notify_id and _seen(session, notification):
        # A gateway's repeat (Alipay: the same notify_id for ~25 h) or a replay: acknowledged,
        # nothing changes.
        log.info("payment notify %s/%s seen before", gateway_name, notification.notify_id[:64])
        _note(session, notification, "duplicate")
        session.commit()
        return NotifyOutcome(True, "duplicate", gw.success_reply)
    return apply_notification(app, session, eng, gw, notification, now, source)


def _seen(session: Session, n: Notification) -> bool:
    return (
        session.scalars(
            select(PaymentNotification.id).where(
                PaymentNotification.gateway == n.gateway,
                PaymentNotification.notify_id == n.notify_id[:64],
                PaymentNotification.outcome.in_(("paid", "duplicate", "refund_pending", "ignored")),
            )
        ).first()
        is not None
    )


def apply_notification(
    app: Any, session: Session, eng: Engine, gw: Any, notification: Notification, now: datetime, source: str = ""
) -> NotifyOutcome:
    """A verified notify, or a verified query answer that says paid: match it, record the
    money once, pay the order or keep the money for an automatic refund."""
    config = app.config
    gateway_name = gw.name
    order = session.scalars(select(PaymentOrder).where(PaymentOrder.number == notification.order_number)).first()
    problem = _mismatch(notification, order, config, gw.merchant_id)
    if problem is not None:
        security_log.warning(
            "payment notify from %s (%s, trade %s, order %s) refused: %s",
            source, gateway_name, notification.trade_no, notification.order_number, problem,
        )  # fmt: skip
        _note(session, notification, f"rejected: {problem}")
        session.commit()
        return NotifyOutcome(False, f"rejected: {problem}", gw.failure_reply)
    assert order is not None
    if not notification.paid:
        # e.g. TRADE_CLOSED: acknowledged, nothing to do.
        _note(session, notification, "ignored")
        session.commit()
        return NotifyOutcome(True, "ignored", gw.success_reply)

    if _received(session, notification, order, now) != "received":
        _note(session, notification, "duplicate")
        session.commit()
        return NotifyOutcome(True, "duplicate", gw.success_reply)
    outcome = _apply(session, eng, notification, now)
    _note(session, notification, outcome)
    session.commit()
    if outcome == "retry":
        return NotifyOutcome(False, outcome, gw.failure_reply)
    return NotifyOutcome(True, outcome, gw.success_reply)


def _mismatch(n: Notification, order: PaymentOrder | None, config: Any, merchant_id: str) -> str | None:
    if n.merchant_id != merchant_id:
        return f"merchant {n.merchant_id!r} is not ours"
    if n.currency != config["PAYMENT_CURRENCY"]:
        return f"currency {n.currency!r} is not {config['PAYMENT_CURRENCY']}"
    if order is None:
        return "unknown order"
    if n.currency != order.currency or n.amount_fen != order.amount_fen:
        return f"amount {n.amount_fen} {n.currency} does not match the order's {order.amount_fen} {order.currency}"
    return None


def _note(session: Session, n: Notification, outcome: str) -> None:
    session.add(
        PaymentNotification(
            gateway=n.gateway,
            trade_no=n.trade_no,
            order_number=n.order_number,
            notify_id=n.notify_id[:64],
            status=n.status[:16],
            outcome=outcome[:32],
        )
    )


def _payment(session: Session, gateway_name: str, trade_no: str) -> Payment | None:
    return session.scalars(select(Payment).where(Payment.gateway == gateway_name, Payment.trade_no == trade_no)).first()


def _received(session: Session, n: Notification, order: PaymentOrder, now: datetime) -> str:
    """Write the row of this trade's money once, whatever the number of notifies; its status."""
    found = _payment(session, n.gateway, n.trade_no)
    if found is not None:
        return found.status
    session.add(
        Payment(
            gateway=n.gateway,
            trade_no=n.trade_no,
            order_number=n.order_number,
            application_id=order.application_id,
            amount_fen=n.amount_fen,
            currency=n.currency,
            channel=n.channel[:20],
            status="received",
            paid_at=n.paid_at,
            received_at=now,
        )
    )
    try:
        session.commit()
        return "received"
    except IntegrityError:
        # A concurrent copy of this notify wrote it first (UNIQUE gateway, trade_no).
        session.rollback()
    found = _payment(session, n.gateway, n.trade_no)
    assert found is not None, "the payment row vanished after a unique violation"
    return found.status


def _apply(session: Session, eng: Engine, n: Notification, now: datetime) -> str:
    payload = {
        "order": n.order_number,
        "amount_fen": n.amount_fen,
        "trade_no": n.trade_no,
        "channel": n.channel,
        "gateway": n.gateway,
    }
    for _ in range(APPLY_ROUNDS):
        session.expire_all()  # what others committed meanwhile
        order = session.scalars(select(PaymentOrder).where(PaymentOrder.number == n.order_number)).one()
        if order.status == OrderStatus.PAID and (order.gateway, order.trade_no) == (n.gateway, n.trade_no):
            _settle(session, n, "paid", "", now)  # the step did it already unless the order was paid by hand
            return "duplicate"
        reason = _refund_reason(order, n)
        if reason is not None:
            return _refund(session, n, reason, now)
        try:
            eng.fire(order.application_id, PAYMENT_SUCCEEDED, ACTOR, payload, now=now)
        except ConflictError:
            continue  # someone moved the application (maybe this very payment): look again
        except (InvalidInput, GuardRefused) as exc:
            return _refund(session, n, f"订单与报名当前订单不一致（{exc}）", now)
        log.info("order %s paid by %s trade %s", n.order_number, n.gateway, n.trade_no)
        return "paid"
    log.warning(
        "order %s: payment %s not applied after %d rounds; the gateway will retry",
        n.order_number,
        n.trade_no,
        APPLY_ROUNDS,
    )
    return "retry"


def _refund_reason(order: PaymentOrder, n: Notification) -> str | None:
    if order.status == OrderStatus.PAID:
        return f"订单已由交易 {order.trade_no} 支付，本笔重复支付"
    if order.status in (OrderStatus.EXPIRED, OrderStatus.CLOSED):
        return "订单已超过支付期限并关闭"
    if n.paid_at is not None and as_utc(n.paid_at) > as_utc(order.deadline):
        return "支付时间晚于订单支付期限"
    return None


def _refund(session: Session, n: Notification, reason: str, now: datetime) -> str:
    if _settle(session, n, "refund_pending", reason, now):
        log.warning("order %s: payment %s/%s recorded for refund: %s", n.order_number, n.gateway, n.trade_no, reason)
        found = _payment(session, n.gateway, n.trade_no)
        if found is not None:
            # The refund itself is the worker's (a gateway call); the tick picks the job up.
            outbox.add(session, outbox.PAYMENT_REFUND, found.application_id, payment_id=found.id)
            session.commit()
    return "refund_pending"


def _settle(session: Session, n: Notification, status: str, reason: str, now: datetime) -> bool:
    """Decide a received payment once; later calls change nothing."""
    changed = session.execute(
        update(Payment)
        .where(Payment.gateway == n.gateway, Payment.trade_no == n.trade_no, Payment.status == "received")
        .values(status=status, reason=reason, settled_at=now)
    ).rowcount
    session.commit()
    return bool(changed)

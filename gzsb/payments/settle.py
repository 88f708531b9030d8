"""Talking to the gateways after the fact (issue 15): the trade query that stands in for a
lost notify, the one payment in flight per order, automatic refunds and closing the
gateway's order when ours expires.

Everything here may call a gateway, so none of it runs while a notify is handled: the
notify path only writes outbox jobs (``payment_refund``), which the worker runs through
``run_job`` together with ``payment_check`` (ask again when no notify came) and
``payment_close`` (our order expired).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gzsb.adapters.payments import GatewayError, Notification, TradeStatus, gateway, gateway_for_channel
from gzsb.adapters.payments_statement import beijing_day
from gzsb.errors import ConflictError, InvalidInput, NotFound
from gzsb.models import OrderStatus, Outbox, Payment, PaymentOrder
from gzsb.payments import service
from gzsb.worker import outbox
from gzsb.workflow.engine import Engine

log = logging.getLogger(__name__)
# How many times the worker asks about one payment in flight (every PAYMENT_RECHECK_SECONDS).
CHECK_ROUNDS = 6
REFUND_SMS = "payment_refunded"


def as_notification(gateway_name: str, status: TradeStatus) -> Notification:
    """A verified query answer that says paid, in the shape of a notify."""
    return Notification(
        gateway=gateway_name,
        merchant_id=status.merchant_id,
        order_number=status.order_number,
        trade_no=status.trade_no,
        amount_fen=status.amount_fen,
        currency=status.currency,
        paid=status.paid,
        status=status.status,
        channel=status.channel,
        paid_at=status.paid_at,
        notify_id="",
    )


def check_gateway(app: Any, session: Session, eng: Engine, order: PaymentOrder, channel: str, now: datetime) -> str:
    """Ask the channel's gateway about the order; a paid answer is applied like a notify.
    Returns paid / refund_pending / duplicate / not_paid / unknown (the gateway failed)."""
    if channel not in service.channels(app.config):
        return "not_paid"
    gw = gateway_for_channel(channel, app)
    try:
        status = gw.query(order.number, channel)
    except GatewayError as exc:
        log.warning("order %s: %s query failed: %s", order.number, gw.name, exc)
        return "unknown"
    if status is None or not status.paid:
        return "not_paid"
    return service.apply_notification(app, session, eng, gw, as_notification(gw.name, status), now).outcome


def result(app: Any, session: Session, eng: Engine, order: PaymentOrder, channel: str, now: datetime) -> service.Result:
    """The result page: ask the gateway (its notify may be late or lost), then our records."""
    # Also when the order was paid the other way: money taken on this channel too is found
    # now (and refunded), not only when its notify comes.
    other_way = order.status == OrderStatus.PAID and channel and channel != order.channel
    outcome = (
        check_gateway(app, session, eng, order, channel, now) if order.status == OrderStatus.OPEN or other_way else ""
    )
    return service.local_result(session, order, channel, gateway_says_paid=outcome in ("unknown", "retry"))


def begin(
    app: Any,
    session: Session,
    eng: Engine,
    order: PaymentOrder,
    channel: str,
    urls: tuple[str, str],
    now: datetime,
    client_ip: str = "",
) -> str:
    """Send the payer to the cashier, one payment in flight per order: the same channel
    reuses the gateway's order (same number); another channel first makes sure the earlier
    gateway order took no money and closes it, else the new payment is refused."""
    notify_url, return_url = urls
    if channel not in service.channels(app.config):
        raise InvalidInput(f"unknown payment channel {channel!r}", {"channel": ["请选择支付方式"]})
    reason = service.payable(session, order, now)
    if reason is not None:
        raise ConflictError(f"order {order.number} is not payable: {order.status}", public=reason)
    earlier = order.started_channel
    if earlier and earlier != channel and order.status == OrderStatus.OPEN:
        name = service.CHANNELS.get(earlier, earlier)
        if check_gateway(app, session, eng, order, earlier, now) in ("paid", "duplicate", "refund_pending"):
            raise ConflictError(
                f"order {order.number} paid by {earlier}", public=f"该订单已通过{name}支付成功，请勿重复支付"
            )
        try:
            closed = gateway_for_channel(earlier, app).close(order.number, earlier)
        except GatewayError as exc:
            raise ConflictError(
                f"order {order.number}: cannot close the {earlier} payment: {exc}",
                public=f"您已发起{name}支付，支付结果确认中，请稍后再试或继续使用{name}完成支付",
            ) from None
        if not closed:
            check_gateway(app, session, eng, order, earlier, now)
            raise ConflictError(
                f"order {order.number} paid by {earlier}", public=f"该订单已通过{name}支付成功，请勿重复支付"
            )
        log.info("order %s: %s payment closed for a change to %s", order.number, earlier, channel)
    # Compare-and-set on the channel in flight: of two tabs starting at once, one wins and
    # the other is refused (a double payment that still slips through is refunded).
    claimed = session.execute(
        update(PaymentOrder)
        .where(PaymentOrder.id == order.id, PaymentOrder.started_channel == earlier)
        .values(
            started_channel=channel, started_gateway=app.config["PAYMENT_CHANNELS"].get(channel, ""), started_at=now
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    if not claimed:
        raise ConflictError(
            f"order {order.number}: another payment started meanwhile",
            public="该订单正在另一个页面发起支付，请勿重复支付",
        )
    session.refresh(order)
    return service.start_payment(app, session, order, channel, notify_url, return_url, now, client_ip)


def add_check(session: Session, order: PaymentOrder, channel: str) -> Outbox:
    """The worker asks the gateway again unless a notify settles the order first."""
    item = outbox.add(session, outbox.PAYMENT_CHECK, order.application_id, order=order.number, channel=channel, round=0)
    session.commit()
    return item


# -- the worker's jobs -------------------------------------------------------------------------------


def _order(session: Session, number: str) -> PaymentOrder | None:
    return session.scalars(select(PaymentOrder).where(PaymentOrder.number == number)).first()


def run_check(app: Any, session: Session, eng: Engine, payload: dict[str, Any], now: datetime) -> int | None:
    """One look at the gateway; the delay before the next one, or None when done."""
    order = _order(session, str(payload.get("order", "")))
    if order is None or order.status != OrderStatus.OPEN:
        return None
    outcome = check_gateway(app, session, eng, order, str(payload.get("channel", "")), now)
    if outcome in ("paid", "duplicate", "refund_pending") or int(payload.get("round", 0)) + 1 >= CHECK_ROUNDS:
        return None
    return int(app.config["PAYMENT_RECHECK_SECONDS"])


def refund_number(payment: Payment) -> str:
    # Derived from our row, so a retry after a lost answer asks for the same refund.
    return f"RF{payment.id:010d}"


def run_refund(app: Any, session: Session, payload: dict[str, Any], now: datetime) -> int | None:
    payment = session.get(Payment, int(payload.get("payment_id", 0)))
    if payment is None or payment.status != "refund_pending":
        return None
    if not payment.refund_no:
        payment.refund_no, payment.refund_status = refund_number(payment), "pending"
        session.commit()  # the number is ours before the gateway hears it
    gw = gateway(payment.gateway, app)
    answer = gw.refund(payment.order_number, payment.trade_no, payment.amount_fen, payment.refund_no, payment.reason)
    if answer.status == "SUCCESS":
        payment.status, payment.refund_status, payment.refunded_at = "refunded", "success", now
        payment.refund_error = ""
        session.add(Outbox(kind="sms", application_id=payment.application_id, payload={"template": REFUND_SMS}))
        session.commit()
        log.info("payment %s/%s refunded as %s", payment.gateway, payment.trade_no, payment.refund_no)
        return None
    if answer.status == "PROCESSING":
        payment.refund_status = "pending"
        session.commit()
        return int(app.config["PAYMENT_RECHECK_SECONDS"])
    payment.refund_status, payment.refund_error = "failed", answer.detail
    session.commit()
    log.error("payment %s/%s: refund refused: %s", payment.gateway, payment.trade_no, answer.detail)
    return None


def retry_refund(session: Session, payment_id: int) -> Payment:
    """Queue again the refund of a payment the gateway refused (e.g. the merchant account
    lacked the balance that day): same refund number, so the gateway cannot pay it twice."""
    payment = session.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise NotFound(f"payment {payment_id} does not exist")
    if payment.status != "refund_pending" or payment.refund_status != "failed":
        raise ConflictError(
            f"payment {payment_id} is {payment.status}/{payment.refund_status or 'not started'}: "
            "only a refund the gateway refused (refund_pending/failed) is retried"
        )
    payment.refund_status, payment.refund_error = "pending", ""
    outbox.add(session, outbox.PAYMENT_REFUND, payment.application_id, payment_id=payment.id)
    session.commit()
    log.info("payment %s/%s: refund %s queued again", payment.gateway, payment.trade_no, payment.refund_no)
    return payment


def run_close(app: Any, session: Session, eng: Engine, payload: dict[str, Any], now: datetime) -> int | None:
    order = _order(session, str(payload.get("order", "")))
    channel = str(payload.get("channel", ""))
    if order is None or order.gateway_closed_at is not None or channel not in service.channels(app.config):
        return None
    if gateway_for_channel(channel, app).close(order.number, channel):
        order.gateway_closed_at = now
        session.commit()
        return None
    check_gateway(app, session, eng, order, channel, now)  # paid meanwhile: record it (a refund)
    return None


def run_job(app: Any, session: Session, eng: Engine, kind: str, payload: dict[str, Any], now: datetime) -> int | None:
    """Run one payments outbox job; GatewayError propagates (the tick retries after the lease)."""
    if kind == outbox.PAYMENT_CHECK:
        return run_check(app, session, eng, payload, now)
    if kind == outbox.PAYMENT_REFUND:
        return run_refund(app, session, payload, now)
    if kind == outbox.PAYMENT_CLOSE:
        return run_close(app, session, eng, payload, now)
    raise LookupError(f"not a payments job: {kind}")


# -- reconciliation against the gateway's daily statement (对账单) -------------------------------


@dataclass(frozen=True)
class Difference:
    gateway: str
    kind: str  # missing_here / missing_there / amount / refund_missing_here
    order_number: str
    trade_no: str
    detail: str


def reconcile(app: Any, session: Session, eng: Engine, day: date, *, apply: bool, now: datetime) -> list[Difference]:
    """Every difference between our payments of one Beijing day and each gateway's statement;
    with ``apply``, a payment the gateway has and we lack (a lost notify) is fetched by the
    trade query and applied like a notify."""
    found: list[Difference] = []
    for name in sorted(set(app.config["PAYMENT_CHANNELS"].values())):
        gw = gateway(name, app)
        rows = gw.statement(day)
        ours = {
            p.trade_no: p
            for p in session.scalars(select(Payment).where(Payment.gateway == name))
            if p.paid_at is not None and beijing_day(p.paid_at) == day
        }
        paid_there = {r.trade_no: r for r in rows if r.kind == "pay"}
        refunded_there = {r.trade_no for r in rows if r.kind == "refund"}
        for trade_no, row in paid_there.items():
            mine = ours.get(trade_no) or _payment(session, name, trade_no)
            if mine is None:
                found.append(Difference(name, "missing_here", row.order_number, trade_no, f"{row.amount_fen} fen"))
                if apply:
                    _fetch(app, session, eng, gw, row.order_number, now)
            elif mine.amount_fen != row.amount_fen:
                detail = f"ours {mine.amount_fen} fen, theirs {row.amount_fen} fen"
                found.append(Difference(name, "amount", row.order_number, trade_no, detail))
        for trade_no, mine in ours.items():
            if trade_no not in paid_there:
                found.append(Difference(name, "missing_there", mine.order_number, trade_no, mine.status))
        for trade_no in refunded_there:
            mine = _payment(session, name, trade_no)
            if mine is None or mine.status != "refunded":
                number = mine.order_number if mine is not None else ""
                found.append(Difference(name, "refund_missing_here", number, trade_no, "refunded there"))
    return found


def _payment(session: Session, gateway_name: str, trade_no: str) -> Payment | None:
    return session.scalars(select(Payment).where(Payment.gateway == gateway_name, Payment.trade_no == trade_no)).first()


def _fetch(app: Any, session: Session, eng: Engine, gw: Any, order_number: str, now: datetime) -> str:
    status = gw.query(order_number, "")
    if status is None or not status.paid:
        return "not_paid"
    return service.apply_notification(app, session, eng, gw, as_notification(gw.name, status), now).outcome

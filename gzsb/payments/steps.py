"""Steps of §2.10 网上支付: the order (【去支付】), the paid notification, expiry.

Each step also keeps the ``payment_orders`` row of the order in step with the application,
in the engine's transaction: notifies are matched against that row, also after the
application has moved on (a late payment is then recorded for refund, never lost).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from marshmallow import fields
from sqlalchemy import update

from gzsb.common.fields import StepSchema, text
from gzsb.errors import InvalidInput
from gzsb.models import Payment, PaymentOrder
from gzsb.payments.names import FEE_YUAN, PAYMENT_HOURS
from gzsb.workflow.engine import StepContext
from gzsb.workflow.registry import STEPS

log = logging.getLogger(__name__)

# The fee in the flow's settings is in yuan (人民币).
CURRENCY = "CNY"


def _session(ctx: StepContext) -> Any:
    return getattr(ctx.store, "session", None)


@STEPS.register("create_order")
def create_order(ctx: StepContext, payload: dict[str, Any]) -> None:
    fee_fen = int(ctx.settings.get(FEE_YUAN, 0)) * 100
    deadline = ctx.now + timedelta(hours=int(ctx.settings.get(PAYMENT_HOURS, 24)))
    number = f"GZSB{ctx.now:%Y%m%d}{ctx.record.uid[:10].upper()}{ctx.record.seq + 1:03d}"
    ctx.data["order"] = {
        "number": number,
        "amount_fen": fee_fen,
        "currency": CURRENCY,
        "status": "unpaid",
        "created_at": ctx.now.isoformat(),
        "deadline": deadline.isoformat(),
    }
    session = _session(ctx)
    if session is not None:
        session.add(
            PaymentOrder(
                number=number,
                application_id=ctx.record.id,
                amount_fen=fee_fen,
                currency=CURRENCY,
                status="open",
                deadline=deadline,
                created_at=ctx.now,
            )
        )
    ctx.record_in_history(order=number, amount_fen=fee_fen)


class PaymentSchema(StepSchema):
    order = text("订单号", max_length=64)
    amount_fen = fields.Integer(required=True, strict=True)
    trade_no = text("交易号", max_length=64)
    channel = text("支付方式", max_length=20)
    # Which gateway reported it (the payments service says; absent for payments recorded by hand).
    gateway = text("支付平台", required=False, max_length=32)


@STEPS.register(
    "record_payment",
    schema=PaymentSchema(),
    example=lambda: {"order": "", "amount_fen": 16000, "trade_no": "SANDBOX0001", "channel": "alipay"},
)
def record_payment(ctx: StepContext, payload: dict[str, Any]) -> None:
    order = ctx.data.get("order") or {}
    if payload["order"] != order.get("number") or payload["amount_fen"] != order.get("amount_fen"):
        raise InvalidInput("payment does not match the open order", {"order": ["订单号或金额不一致"]})
    gateway = payload.get("gateway", "")
    order.update(status="paid", paid_at=ctx.now.isoformat(), trade_no=payload["trade_no"], channel=payload["channel"])
    if gateway:
        order["gateway"] = gateway
    session = _session(ctx)
    if session is None:
        return
    session.execute(
        update(PaymentOrder)
        .where(PaymentOrder.number == order["number"], PaymentOrder.status == "open")
        .values(
            status="paid", closed_at=ctx.now, gateway=gateway, trade_no=payload["trade_no"], channel=payload["channel"]
        )
    )
    if gateway:
        # The received money becomes the order's payment in the same transaction as the move.
        session.execute(
            update(Payment)
            .where(Payment.gateway == gateway, Payment.trade_no == payload["trade_no"])
            .values(status="paid", settled_at=ctx.now, reason="")
        )


@STEPS.register("expire_order")
def expire_order(ctx: StepContext, payload: dict[str, Any]) -> None:
    order = ctx.data.get("order") or {}
    order["status"] = "expired"
    ctx.data.setdefault("expired_orders", []).append(order)
    ctx.data.pop("order", None)
    session = _session(ctx)
    if session is not None and order.get("number"):
        session.execute(
            update(PaymentOrder)
            .where(PaymentOrder.number == order["number"], PaymentOrder.status == "open")
            .values(status="expired", closed_at=ctx.now)
        )

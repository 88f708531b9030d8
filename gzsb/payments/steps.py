"""Steps of §2.10 网上支付: the order (【去支付】), the paid notification, expiry.

The order is its ``payment_orders`` row, changed through the step's services in the
engine's transaction: notifies are matched against that row, also after the application
has moved on (a late payment is then recorded for refund, never lost).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from marshmallow import fields

from gzsb.common.fields import StepSchema, text
from gzsb.enrollment.service import services_of
from gzsb.errors import InvalidInput
from gzsb.payments.names import FEE_YUAN, PAYMENT_HOURS
from gzsb.workflow.engine import StepContext
from gzsb.workflow.registry import STEPS

log = logging.getLogger(__name__)

# The fee in the flow's settings is in yuan (人民币).
CURRENCY = "CNY"


@STEPS.register("create_order")
def create_order(ctx: StepContext, payload: dict[str, Any]) -> None:
    services = services_of(ctx, "orders")
    fee_fen = int(ctx.settings.get(FEE_YUAN, 0)) * 100
    deadline = ctx.now + timedelta(hours=int(ctx.settings.get(PAYMENT_HOURS, 24)))
    number = f"GZSB{ctx.now:%Y%m%d}{ctx.record.uid[:10].upper()}{ctx.record.seq + 1:03d}"
    services.open_order(
        ctx.record.id, number=number, amount_fen=fee_fen, currency=CURRENCY, deadline=deadline, now=ctx.now
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
    services = services_of(ctx, "orders")
    order = services.current_order(ctx.record.id)
    if order is None or payload["order"] != order.number or payload["amount_fen"] != order.amount_fen:
        raise InvalidInput("payment does not match the open order", {"order": ["订单号或金额不一致"]})
    # The received money becomes the order's payment in the same transaction as the move.
    services.pay_order(
        order.number,
        gateway=payload.get("gateway", ""),
        trade_no=payload["trade_no"],
        channel=payload["channel"],
        now=ctx.now,
    )


@STEPS.register("expire_order")
def expire_order(ctx: StepContext, payload: dict[str, Any]) -> None:
    services_of(ctx, "orders").expire_order(ctx.record.id, ctx.now)

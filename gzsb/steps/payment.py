"""Steps of §2.10 网上支付: the order, the paid notification, expiry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from marshmallow import fields

from gzsb.errors import InvalidInput
from gzsb.steps.fields import StepSchema, text
from gzsb.workflow.engine import StepContext
from gzsb.workflow.registry import STEPS


@STEPS.register("create_order")
def create_order(ctx: StepContext, payload: dict[str, Any]) -> None:
    fee_fen = int(ctx.settings.get("fee_yuan", 0)) * 100
    deadline = ctx.now + timedelta(hours=int(ctx.settings.get("payment_hours", 24)))
    number = f"GZSB{ctx.now:%Y%m%d}{ctx.record.uid[:10].upper()}{ctx.record.seq + 1:03d}"
    ctx.data["order"] = {
        "number": number,
        "amount_fen": fee_fen,
        "status": "unpaid",
        "created_at": ctx.now.isoformat(),
        "deadline": deadline.isoformat(),
    }
    ctx.record_in_history(order=number, amount_fen=fee_fen)


class PaymentSchema(StepSchema):
    order = text("订单号", max_length=64)
    amount_fen = fields.Integer(required=True, strict=True)
    trade_no = text("交易号", max_length=64)
    channel = text("支付方式", max_length=20)


@STEPS.register(
    "record_payment",
    schema=PaymentSchema(),
    example=lambda: {"order": "", "amount_fen": 16000, "trade_no": "SANDBOX0001", "channel": "alipay"},
)
def record_payment(ctx: StepContext, payload: dict[str, Any]) -> None:
    order = ctx.data.get("order") or {}
    if payload["order"] != order.get("number") or payload["amount_fen"] != order.get("amount_fen"):
        raise InvalidInput("payment does not match the open order", {"order": ["订单号或金额不一致"]})
    order.update(status="paid", paid_at=ctx.now.isoformat(), trade_no=payload["trade_no"], channel=payload["channel"])


@STEPS.register("expire_order")
def expire_order(ctx: StepContext, payload: dict[str, Any]) -> None:
    order = ctx.data.get("order") or {}
    order["status"] = "expired"
    ctx.data.setdefault("expired_orders", []).append(order)
    ctx.data.pop("order", None)

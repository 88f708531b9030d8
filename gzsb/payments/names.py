"""Flow names the payments area relies on (网上支付)."""

from __future__ import annotations

from gzsb.workflow.needs import NEEDS

need = NEEDS.area("payments")

ORDER_OPEN = need.state("payment_pending", "the open order page: a gateway notify is applied only here")

FEE_YUAN = need.setting("fee_yuan", "the amount of the order")
PAYMENT_HOURS = need.setting("payment_hours", "how long an order stays open")

CREATE_ORDER = need.event("create_order", "the 【去支付】 button that opens the order")
PAYMENT_SUCCEEDED = need.event("payment_succeeded", "fired by a verified gateway notify")
PAYMENT_EXPIRED = need.event("payment_expired", "how staff read an order that ran out of time")

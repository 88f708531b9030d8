"""The sandbox gateway built into the app, as a merchant sees it (``SandboxGateway``,
registered as ``sandbox``): HMAC-signed requests to its cashier and its query, close, refund
and statement APIs, and its signed notifies. Its own side, which on a real gateway lives on
its servers, is ``gzsb.adapters.payments_sandbox_server``; the two talk only through the
HTTP-shaped messages a real gateway would use.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import urlencode

import requests

from gzsb.adapters.payments import (
    PAID_STATUSES,
    BadNotification,
    GatewayError,
    Notification,
    PaymentRequest,
    RefundResult,
    TradeStatus,
    Transport,
    WsgiTransport,
    parse_time,
    parse_yuan,
    register_gateway,
    signature_ok,
    signed,
    time_text,
    transport,
    yuan_text,
)
from gzsb.adapters.payments_statement import StatementRow, parse_statement

log = logging.getLogger(__name__)


@register_gateway("sandbox")
class SandboxGateway:
    name = "sandbox"
    success_reply = "success"
    failure_reply = "fail"

    def __init__(self, app: Any) -> None:
        config = app.config
        self.app = app
        self.merchant_id = config["PAYMENT_MERCHANT_ID"]
        self.key = config["PAYMENT_SIGN_KEY"]
        # The result page waits for the query: short, unlike the gateway's notify posts.
        self.timeout = config["PAYMENT_QUERY_TIMEOUT"]
        # The browser goes to the cashier (relative: this app); servers need an absolute URL.
        self.browser_base = config["PAYMENT_SANDBOX_URL"].rstrip("/")
        self.server_base = (config["PAYMENT_SANDBOX_URL"] or config["PAYMENT_NOTIFY_BASE_URL"]).rstrip("/")

    def _query_transport(self) -> Transport:
        # A sandbox inside this very app is asked in process (still the signed request and the
        # signed answer, through the WSGI stack): a web worker asking its own server over HTTP
        # could be waiting for itself.
        if not self.browser_base:
            return WsgiTransport(self.app)
        return transport(self.app)

    def start(self, request: PaymentRequest) -> str:
        params = signed(
            {
                "merchant_id": self.merchant_id,
                "out_trade_no": request.order_number,
                "total_amount": yuan_text(request.amount_fen),
                "currency": request.currency,
                "subject": request.subject,
                "channel": request.channel,
                "notify_url": request.notify_url,
                "return_url": request.return_url,
                "time_expire": time_text(request.expires_at),
            },
            self.key,
        )
        return f"{self.browser_base}/sandbox/gateway?{urlencode(params)}"

    def verify_notify(
        self, params: Mapping[str, str], headers: Mapping[str, str] | None = None, body: str = ""
    ) -> Notification:
        if not signature_ok(params, self.key):
            raise BadNotification("sandbox notify: signature does not verify")
        try:
            status = params["trade_status"]
            paid_at = parse_time(params["gmt_payment"]) if params.get("gmt_payment") else None
            return Notification(
                gateway=self.name,
                merchant_id=params["merchant_id"],
                order_number=params["out_trade_no"],
                trade_no=params["trade_no"],
                amount_fen=parse_yuan(params["total_amount"]),
                currency=params["currency"],
                paid=status in PAID_STATUSES,
                status=status,
                channel=params.get("channel", ""),
                paid_at=paid_at,
                notify_id=params.get("notify_id", ""),
            )
        except KeyError as exc:
            raise BadNotification(f"sandbox notify: missing {exc.args[0]}") from None

    def _call(self, path: str, fields: Mapping[str, str]) -> dict[str, Any]:
        """A signed request to the sandbox's API and its verified, signed answer."""
        params = signed({"merchant_id": self.merchant_id, "nonce": secrets.token_hex(8), **fields}, self.key)
        try:
            status, body = self._query_transport().post(f"{self.server_base}/sandbox/api/{path}", params, self.timeout)
            answer = json.loads(body)
        except (requests.RequestException, OSError, ValueError) as exc:
            raise GatewayError(f"sandbox {path} failed: {exc}") from None
        if not isinstance(answer, dict) or not signature_ok(answer, self.key):
            raise GatewayError(f"sandbox {path}: unsigned or badly signed answer (HTTP {status})")
        return answer

    def query(self, order_number: str, channel: str) -> TradeStatus | None:
        answer = self._call("query", {"out_trade_no": order_number, "channel": channel})
        if answer.get("code") == "TRADE_NOT_EXIST":
            return None
        if answer.get("code") != "SUCCESS" or answer.get("out_trade_no") != order_number:
            raise GatewayError(f"sandbox query: unexpected answer {answer.get('code')!r}")
        try:
            return TradeStatus(
                order_number=order_number,
                trade_no=answer["trade_no"],
                paid=answer["trade_status"] in PAID_STATUSES,
                status=answer["trade_status"],
                amount_fen=parse_yuan(answer["total_amount"]),
                currency=answer.get("currency", ""),
                merchant_id=answer.get("merchant_id", ""),
                channel=answer.get("channel", ""),
                paid_at=parse_time(answer["gmt_payment"]) if answer.get("gmt_payment") else None,
            )
        except (KeyError, BadNotification) as exc:
            raise GatewayError(f"sandbox query: malformed answer: {exc}") from None

    def close(self, order_number: str, channel: str) -> bool:
        answer = self._call("close", {"out_trade_no": order_number, "channel": channel})
        if answer.get("code") == "TRADE_STATUS_ERROR":
            return False
        if answer.get("code") not in ("SUCCESS", "TRADE_NOT_EXIST"):
            raise GatewayError(f"sandbox close: unexpected answer {answer.get('code')!r}")
        return True

    def refund(self, order_number: str, trade_no: str, amount_fen: int, refund_no: str, reason: str) -> RefundResult:
        answer = self._call(
            "refund",
            {
                "out_trade_no": order_number,
                "trade_no": trade_no,
                "refund_amount": yuan_text(amount_fen),
                "out_request_no": refund_no,
                "refund_reason": reason[:80],
            },
        )
        if answer.get("code") == "SUCCESS" and answer.get("out_request_no") == refund_no:
            return RefundResult(refund_no, "SUCCESS")
        return RefundResult(refund_no, "FAILED", str(answer.get("code", ""))[:100])

    def statement(self, day: date) -> list[StatementRow]:
        answer = self._call("statement", {"bill_date": day.isoformat()})
        if answer.get("code") != "SUCCESS":
            raise GatewayError(f"sandbox statement: unexpected answer {answer.get('code')!r}")
        return parse_statement(str(answer.get("content", "")))

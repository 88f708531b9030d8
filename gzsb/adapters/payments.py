"""Payment gateways behind one small interface.

A gateway adapter (``PaymentGateway``) does three things for us, the merchant: send the
payer to its cashier (``start`` → a redirect URL), check a notify it posts to us
(``verify_notify`` → a ``Notification`` or ``BadNotification``), and answer a signed status
query (``query``), and since issue 15 close an unpaid order, refund a trade and hand over
the daily statement. Adapters are looked up by name (``GATEWAYS``); ``PAYMENT_CHANNELS`` in
config.py says which gateway serves 支付宝 / 微信支付 / 银联. They register under their own
names from their modules: ``payments_sandbox`` (built in), ``payments_alipay``,
``payments_wechat``.

Messages are signed like Alipay / WeChat Pay v2 / UnionPay do it: the parameters except
``sign`` and ``sign_type`` and empty values, sorted by key, joined as ``k=v&k=v``, and an
HMAC-SHA256 over that with the merchant key, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from gzsb.adapters.payments_statement import StatementRow
from gzsb.common.beijing import as_utc
from gzsb.errors import ConfigurationError, NotFound, ServiceError

log = logging.getLogger(__name__)

SIGN_TYPE = "HMAC-SHA256"
UNSIGNED = frozenset({"sign", "sign_type"})


class BadNotification(ServiceError):
    """A gateway message failed its signature or its format: nothing in it can be trusted."""

    http_status = 400
    code = "bad_notification"
    public_message = "支付通知无效"


class GatewayError(ServiceError):
    """The gateway could not be reached or answered something we cannot use."""

    http_status = 502
    code = "gateway_error"
    public_message = "支付平台暂时无法访问，请稍后再试"


# -- signing -------------------------------------------------------------------------------


def canonical_string(params: Mapping[str, Any]) -> str:
    return "&".join(
        f"{key}={params[key]}" for key in sorted(params) if key not in UNSIGNED and params[key] not in ("", None)
    )


def sign(params: Mapping[str, Any], key: str) -> str:
    digest = hmac.new(key.encode("utf-8"), canonical_string(params).encode("utf-8"), hashlib.sha256)
    return digest.hexdigest().upper()


def signed(params: Mapping[str, Any], key: str) -> dict[str, str]:
    out = {k: str(v) for k, v in params.items() if v not in ("", None)}
    out["sign_type"] = SIGN_TYPE
    out["sign"] = sign(out, key)
    return out


def signature_ok(params: Mapping[str, Any], key: str) -> bool:
    given = str(params.get("sign", ""))
    if params.get("sign_type", SIGN_TYPE) != SIGN_TYPE:
        return False
    # Bytes on both sides: compare_digest refuses non-ASCII str, and a forged sign may be anything.
    return hmac.compare_digest(sign(params, key).encode(), given.upper().encode("utf-8", "replace"))


# -- amounts and times as gateways write them -----------------------------------------------


def yuan_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def parse_yuan(text: str) -> int:
    """``"160.00"`` → 16000 fen, exactly; anything else is a format error."""
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError):
        raise BadNotification(f"amount {text!r} is not a number") from None
    fen = value * 100
    if not value.is_finite() or fen != fen.to_integral_value() or value < 0:
        raise BadNotification(f"amount {text!r} is not a whole number of fen")
    return int(fen)


def time_text(moment: datetime) -> str:
    return as_utc(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        raise BadNotification(f"time {text!r} is not YYYY-MM-DDTHH:MM:SSZ") from None


# -- the interface ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentRequest:
    order_number: str
    amount_fen: int
    currency: str
    subject: str
    channel: str
    notify_url: str
    return_url: str
    expires_at: datetime
    client_ip: str = ""  # WeChat Pay's H5 orders name the payer's address


@dataclass(frozen=True)
class Notification:
    """A verified notify, in our terms."""

    gateway: str
    merchant_id: str
    order_number: str
    trade_no: str
    amount_fen: int
    currency: str
    paid: bool
    status: str  # the gateway's own word, e.g. TRADE_SUCCESS
    channel: str
    paid_at: datetime | None
    notify_id: str


@dataclass(frozen=True)
class TradeStatus:
    """A verified answer of the gateway's trade query; when it says paid it is as good as a
    notify (the extra fields let the payments service check it the same way)."""

    order_number: str
    trade_no: str
    paid: bool
    status: str
    amount_fen: int
    currency: str = "CNY"
    merchant_id: str = ""
    channel: str = ""
    paid_at: datetime | None = None


@dataclass(frozen=True)
class RefundResult:
    refund_no: str
    status: str  # SUCCESS / PROCESSING (asked again later) / FAILED
    detail: str = ""


class PaymentGateway(Protocol):
    name: str
    merchant_id: str
    success_reply: str
    failure_reply: str

    def start(self, request: PaymentRequest) -> str: ...

    def verify_notify(
        self, params: Mapping[str, str], headers: Mapping[str, str] | None = None, body: str = ""
    ) -> Notification: ...

    def query(self, order_number: str, channel: str) -> TradeStatus | None: ...

    def close(self, order_number: str, channel: str) -> bool:
        """Close the gateway's unpaid order; False when it cannot be closed because it is paid."""
        ...

    def refund(self, order_number: str, trade_no: str, amount_fen: int, refund_no: str, reason: str) -> RefundResult:
        """Send a whole trade back; the same ``refund_no`` twice refunds once."""
        ...

    def statement(self, day: date) -> list[StatementRow]: ...


# -- how messages travel between servers ------------------------------------------------------


class Transport(Protocol):
    def post(self, url: str, data: Mapping[str, str], timeout: float) -> tuple[int, str]: ...


class HttpTransport:
    def post(self, url: str, data: Mapping[str, str], timeout: float) -> tuple[int, str]:
        response = requests.post(url, data=dict(data), timeout=timeout)
        return response.status_code, response.text


class WsgiTransport:
    """Posts through a Flask app's whole WSGI stack in process (routing, CSRF exemption,
    views): for tests, and for a single-process demo without a server listening."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def post(self, url: str, data: Mapping[str, str], timeout: float) -> tuple[int, str]:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        response = self.app.test_client().post(target, data=dict(data))
        return response.status_code, response.get_data(as_text=True)


TRANSPORTS: dict[str, Callable[[Any], Transport]] = {
    "http": lambda app: HttpTransport(),
    "wsgi": WsgiTransport,
}


def transport(app: Any) -> Transport:
    name = app.config["PAYMENT_SANDBOX_TRANSPORT"]
    factory = TRANSPORTS.get(name)
    if factory is None:
        raise ConfigurationError(f"PAYMENT_SANDBOX_TRANSPORT {name!r} is not one of {sorted(TRANSPORTS)}")
    return factory(app)


# -- the registry of gateways -----------------------------------------------------------------

GatewayFactory = Callable[[Any], PaymentGateway]
GATEWAYS: dict[str, GatewayFactory] = {}


def register_gateway(name: str) -> Callable[[GatewayFactory], GatewayFactory]:
    def add(factory: GatewayFactory) -> GatewayFactory:
        GATEWAYS[name] = factory
        return factory

    return add


def gateway(name: str, app: Any) -> PaymentGateway:
    factory = GATEWAYS.get(name)
    if factory is None:
        raise ConfigurationError(f"payment gateway {name!r} is not registered; known: {sorted(GATEWAYS)}")
    return factory(app)


def gateway_for_channel(channel: str, app: Any) -> PaymentGateway:
    name = app.config["PAYMENT_CHANNELS"].get(channel)
    if name is None:
        raise NotFound(f"payment channel {channel!r} is not configured", public="不支持该支付方式")
    return gateway(name, app)


# What Alipay-style gateways (and the sandbox) call a paid trade.
PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})

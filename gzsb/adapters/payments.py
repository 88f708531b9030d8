"""Payment gateways behind one small interface, and the sandbox gateway built into the app.

A gateway adapter (``PaymentGateway``) does three things for us, the merchant: send the
payer to its cashier (``start`` → a redirect URL), check a notify it posts to us
(``verify_notify`` → a ``Notification`` or ``BadNotification``), and answer a signed status
query (``query``). Adapters are looked up by name (``GATEWAYS``); ``PAYMENT_CHANNELS`` in
config.py says which gateway serves 支付宝 / 微信支付 / 银联. Real adapters register here
under their own names.

Messages are signed like Alipay / WeChat Pay v2 / UnionPay do it: the parameters except
``sign`` and ``sign_type`` and empty values, sorted by key, joined as ``k=v&k=v``, and an
HMAC-SHA256 over that with the merchant key, compared in constant time.

The second half of the module is the sandbox's own side, which on a real gateway lives on
its servers: a ledger of trades (``SandboxTrade``), the cashier, the asynchronous signed
notify with retries (sent by a Huey task, ``gzsb.worker.tasks.sandbox_notify``) and the query API.
It talks to us only through the same HTTP-shaped messages a real gateway would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import requests
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gzsb.adapters.payments_statement import StatementRow, beijing_day, build_statement, parse_statement
from gzsb.common.beijing import as_utc
from gzsb.errors import ConfigurationError, ConflictError, NotFound, ServiceError
from gzsb.models import SandboxTrade

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


# -- the sandbox, as a merchant sees it ------------------------------------------------------

PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})


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


# -- the sandbox's own side (a real gateway's servers) -------------------------------------------


class SandboxError(ServiceError):
    http_status = 400
    code = "sandbox"
    public_message = "支付请求无效"


CHANNEL_NAMES = {"alipay": "支付宝", "wechat": "微信支付", "unionpay": "银联"}


def new_trade_no(now: datetime) -> str:
    return f"SBX{as_utc(now):%Y%m%d%H%M%S}{secrets.token_hex(6).upper()}"


class Sandbox:
    """The gateway's ledger and behaviour, on the app's database and clock."""

    def __init__(self, session: Session, config: Mapping[str, Any], clock: Callable[[], datetime]) -> None:
        self.session = session
        self.config = config
        self.clock = clock
        # One merchant (us); a real gateway would look the key up by merchant id.
        self.merchants = {config["PAYMENT_MERCHANT_ID"]: config["PAYMENT_SIGN_KEY"]}
        self.merchant_names = {config["PAYMENT_MERCHANT_ID"]: config["PAYMENT_MERCHANT_NAME"]}

    @classmethod
    def of(cls, app: Any, session: Session) -> Sandbox:
        return cls(session, app.config, app.extensions["gzsb.clock"])

    def _key(self, params: Mapping[str, str]) -> str:
        key = self.merchants.get(params.get("merchant_id", ""))
        if key is None or not signature_ok(params, key):
            log.warning("sandbox: refused a request with an unknown merchant or a bad signature")
            raise SandboxError("sandbox: unknown merchant or bad signature", public="签名验证失败，支付请求无效")
        return key

    def merchant_name(self, trade: SandboxTrade) -> str:
        return self.merchant_names.get(trade.merchant_id, trade.merchant_id)

    def trade(self, trade_no: str) -> SandboxTrade:
        trade = self.session.scalars(select(SandboxTrade).where(SandboxTrade.trade_no == trade_no)).first()
        if trade is None:
            raise NotFound(f"sandbox trade {trade_no} does not exist", public="交易不存在")
        return trade

    def open_trade(self, params: Mapping[str, str]) -> SandboxTrade:
        """The page-pay entry: a signed request creates the trade, or finds the one already
        opened for this order and channel (like out_trade_no on a real gateway)."""
        self._key(params)
        try:
            fields = {
                name: params[name]
                for name in ("merchant_id", "out_trade_no", "channel", "subject", "notify_url", "return_url")
            }
            amount_fen = parse_yuan(params["total_amount"])
            expires_at = parse_time(params["time_expire"])
            currency = params["currency"]
        except (KeyError, BadNotification) as exc:
            raise SandboxError(f"sandbox: malformed request: {exc}") from None
        if fields["channel"] not in CHANNEL_NAMES:
            raise SandboxError(f"sandbox: unknown channel {fields['channel']!r}", public="不支持该支付方式")
        existing = self._find(fields["merchant_id"], fields["out_trade_no"], fields["channel"])
        if existing is not None:
            if existing.amount_fen != amount_fen:
                raise SandboxError("sandbox: same out_trade_no with another amount", public="订单金额与原交易不一致")
            if existing.status == "WAIT_BUYER_PAY":
                existing.return_url, existing.notify_url = fields["return_url"], fields["notify_url"]
                self.session.commit()
            return existing
        trade = SandboxTrade(
            trade_no=new_trade_no(self.clock()),
            amount_fen=amount_fen,
            currency=currency,
            expires_at=expires_at,
            created_at=self.clock(),
            **fields,
        )
        self.session.add(trade)
        try:
            self.session.commit()
        except IntegrityError:
            # The same page opened twice at once: the other request created it.
            self.session.rollback()
            found = self._find(fields["merchant_id"], fields["out_trade_no"], fields["channel"])
            if found is None:
                raise
            return found
        log.info("sandbox: trade %s opened for order %s (%s)", trade.trade_no, trade.out_trade_no, trade.channel)
        return trade

    def _find(self, merchant_id: str, out_trade_no: str, channel: str) -> SandboxTrade | None:
        return self.session.scalars(
            select(SandboxTrade).where(
                SandboxTrade.merchant_id == merchant_id,
                SandboxTrade.out_trade_no == out_trade_no,
                SandboxTrade.channel == channel,
            )
        ).first()

    def is_expired(self, trade: SandboxTrade) -> bool:
        return self.clock() >= as_utc(trade.expires_at)

    def pay(self, trade_no: str) -> SandboxTrade:
        """The payer pressed 确认支付. Paying twice is harmless; after time_expire the trade closes."""
        trade = self.trade(trade_no)
        if trade.status == "WAIT_BUYER_PAY":
            if self.is_expired(trade):
                trade.status = "TRADE_CLOSED"
                self.session.commit()
            else:
                trade.status, trade.paid_at = "TRADE_SUCCESS", self.clock()
                self.session.commit()
                log.info("sandbox: trade %s paid", trade.trade_no)
        if trade.status == "TRADE_CLOSED":
            # Past time_expire, or closed by the merchant (the order expired or the payer chose
            # another way to pay): no money is taken either way.
            raise ConflictError(
                f"sandbox trade {trade_no} is closed", public="交易已关闭，未扣款。请返回商户查看订单状态"
            )
        return trade

    def return_url(self, trade: SandboxTrade) -> str:
        """Where the payer's browser goes back to, with the signed result appended."""
        key = self.merchants[trade.merchant_id]
        params = signed(
            {
                "merchant_id": trade.merchant_id,
                "out_trade_no": trade.out_trade_no,
                "trade_no": trade.trade_no,
                "total_amount": yuan_text(trade.amount_fen),
                "trade_status": trade.status,
            },
            key,
        )
        joiner = "&" if "?" in trade.return_url else "?"
        return f"{trade.return_url}{joiner}{urlencode(params)}"

    def notify_params(self, trade: SandboxTrade) -> dict[str, str]:
        return signed(
            {
                "notify_id": secrets.token_hex(16),
                "notify_time": time_text(self.clock()),
                "merchant_id": trade.merchant_id,
                "out_trade_no": trade.out_trade_no,
                "trade_no": trade.trade_no,
                "total_amount": yuan_text(trade.amount_fen),
                "currency": trade.currency,
                "channel": trade.channel,
                "trade_status": trade.status,
                "gmt_payment": time_text(trade.paid_at) if trade.paid_at else "",
            },
            self.merchants[trade.merchant_id],
        )

    def deliver_notify(self, trade_no: str, via: Transport, attempt: int) -> int | None:
        """POST the signed notify once. Returns the delay (s) before the next send, or None.

        Until the merchant answers ``success`` the schedule's delays grow; after the first
        ``success`` one more send follows (real gateways repeat notifies), then none.
        """
        trade = self.trade(trade_no)
        if trade.status not in PAID_STATUSES:
            return None
        repeat = trade.notify_acked_at is not None
        try:
            status, body = via.post(trade.notify_url, self.notify_params(trade), self.config["PAYMENT_HTTP_TIMEOUT"])
            acked = status == 200 and body.strip() == "success"
            result = f"HTTP {status}: {body.strip()[:60]}"
        except Exception as exc:  # noqa: BLE001 - any failure to deliver is retried on the schedule
            acked, result = False, f"{type(exc).__name__}: {exc}"[:200]
        trade.notify_attempts += 1
        trade.last_notify_result = result
        if acked and trade.notify_acked_at is None:
            trade.notify_acked_at = self.clock()
        self.session.commit()
        log.info("sandbox: notify %s attempt %d → %s", trade_no, attempt + 1, result)
        if repeat:
            return None
        if acked:
            return int(self.config["PAYMENT_SANDBOX_REPEAT_AFTER"]) or None
        delays = self.config["PAYMENT_SANDBOX_RETRY_DELAYS"]
        if attempt < len(delays):
            return int(delays[attempt])
        log.warning("sandbox: notify %s given up after %d attempts", trade_no, attempt + 1)
        return None

    def query(self, params: Mapping[str, str]) -> dict[str, str]:
        """The signed query API: the paid trade of an order if any, else its latest one."""
        key = self._key(params)
        rows = self.session.scalars(
            select(SandboxTrade)
            .where(
                SandboxTrade.merchant_id == params["merchant_id"],
                SandboxTrade.out_trade_no == params.get("out_trade_no", ""),
            )
            .order_by(SandboxTrade.id.desc())
        ).all()
        if params.get("channel"):
            rows = [t for t in rows if t.channel == params["channel"]] or rows
        paid = [t for t in rows if t.status in PAID_STATUSES]
        trade = (paid or rows or [None])[0]
        if trade is None:
            return signed({"code": "TRADE_NOT_EXIST", "out_trade_no": params.get("out_trade_no", "")}, key)
        if trade.status == "WAIT_BUYER_PAY" and self.is_expired(trade):
            trade.status = "TRADE_CLOSED"
            self.session.commit()
        return signed(
            {
                "code": "SUCCESS",
                "merchant_id": trade.merchant_id,
                "out_trade_no": trade.out_trade_no,
                "trade_no": trade.trade_no,
                "trade_status": trade.status,
                "total_amount": yuan_text(trade.amount_fen),
                "currency": trade.currency,
                "channel": trade.channel,
                "gmt_payment": time_text(trade.paid_at) if trade.paid_at else "",
            },
            key,
        )

    def _trades(self, params: Mapping[str, str]) -> list[SandboxTrade]:
        query = select(SandboxTrade).where(
            SandboxTrade.merchant_id == params["merchant_id"],
            SandboxTrade.out_trade_no == params.get("out_trade_no", ""),
        )
        if params.get("channel"):
            query = query.where(SandboxTrade.channel == params["channel"])
        return list(self.session.scalars(query.order_by(SandboxTrade.id)))

    def close(self, params: Mapping[str, str]) -> dict[str, str]:
        """The close API: the order's unpaid trades close (a paid one cannot be)."""
        key = self._key(params)
        trades = self._trades(params)
        code = "SUCCESS" if trades else "TRADE_NOT_EXIST"
        for trade in trades:
            if trade.status == "WAIT_BUYER_PAY":
                trade.status = "TRADE_CLOSED"
            elif trade.status in PAID_STATUSES:
                code = "TRADE_STATUS_ERROR"
        self.session.commit()
        return signed({"code": code, "out_trade_no": params.get("out_trade_no", "")}, key)

    def refund(self, params: Mapping[str, str]) -> dict[str, str]:
        """The refund API: the whole amount of a paid trade, once per out_request_no."""
        key = self._key(params)
        trade = self.session.scalars(
            select(SandboxTrade).where(
                SandboxTrade.merchant_id == params["merchant_id"], SandboxTrade.trade_no == params.get("trade_no", "")
            )
        ).first()
        number = params.get("out_request_no", "")
        if trade is None or trade.out_trade_no != params.get("out_trade_no"):
            code = "TRADE_NOT_EXIST"
        elif trade.refund_no:
            code = "SUCCESS" if trade.refund_no == number else "REFUND_AMT_NOT_EQUAL_TOTAL"
        elif trade.status not in PAID_STATUSES or params.get("refund_amount") != yuan_text(trade.amount_fen):
            code = "TRADE_STATUS_ERROR"
        else:
            trade.refund_no, trade.refunded_fen, trade.refunded_at = number, trade.amount_fen, self.clock()
            trade.status = "TRADE_CLOSED"  # wholly refunded, as Alipay says
            self.session.commit()
            log.info("sandbox: trade %s refunded (%s)", trade.trade_no, number)
            code = "SUCCESS"
        return signed({"code": code, "out_request_no": number}, key)

    def statement(self, params: Mapping[str, str]) -> dict[str, str]:
        """The daily statement of one Beijing day, in the format the adapters read."""
        key = self._key(params)
        try:
            day = date.fromisoformat(params.get("bill_date", ""))
        except ValueError:
            raise SandboxError("sandbox: bad bill_date") from None
        rows: list[StatementRow] = []
        for trade in self.session.scalars(
            select(SandboxTrade).where(SandboxTrade.merchant_id == params["merchant_id"]).order_by(SandboxTrade.id)
        ):
            if trade.paid_at is not None and beijing_day(trade.paid_at) == day:
                rows.append(StatementRow(trade.trade_no, trade.out_trade_no, "pay", trade.amount_fen, trade.paid_at))
            if trade.refunded_at is not None and beijing_day(trade.refunded_at) == day:
                rows.append(
                    StatementRow(trade.trade_no, trade.out_trade_no, "refund", trade.refunded_fen, trade.refunded_at)
                )
        return signed({"code": "SUCCESS", "content": build_statement(rows)}, key)

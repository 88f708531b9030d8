"""WeChat Pay API v3 (微信支付) behind the gateway interface, with wechatpayv3.

The SDK verifies the notify signature (SHA256withRSA over ``timestamp\\nnonce\\nbody\\n``)
and decrypts the resource (AES-256-GCM under the APIv3 key). Alone it would accept a
30-day-old timestamp and a replay, and on a serial it does not know it downloads the
platform certificates from the internet. So before the SDK sees a notify this adapter:
refuses WeChat's ``WECHATPAY/SIGNTEST/`` probes, accepts only the serial of the configured
WeChat Pay public key, and only a timestamp within ``PAYMENT_NOTIFY_MAX_SKEW`` of our clock;
the payments service de-duplicates notify ids. Handling a notify never touches the network.

The SDK is built in public-key mode (``public_key`` + ``public_key_id``), so building it does
not download certificates either. ``PAYMENT_WECHAT_GATEWAY_URL`` points its server calls
elsewhere (the contract tests run a gateway on loopback).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import requests
from wechatpayv3 import WeChatPay, WeChatPayType

from gzsb.adapters.payments import (
    BadNotification,
    GatewayError,
    Notification,
    PaymentRequest,
    RefundResult,
    TradeStatus,
    register_gateway,
)
from gzsb.adapters.payments_alipay import read_key
from gzsb.adapters.payments_statement import StatementError, StatementRow, parse_wechat_statement
from gzsb.common.beijing import BEIJING, as_utc
from gzsb.errors import ConfigurationError

log = logging.getLogger(__name__)
PROBE = "WECHATPAY/SIGNTEST/"
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
HEADERS = ("Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial")
# trade_state values that mean the money arrived (REFUND: it arrived, then went back).
PAID_STATES = frozenset({"SUCCESS", "REFUND"})


def rfc3339(moment: datetime) -> str:
    return as_utc(moment).astimezone(BEIJING).isoformat(timespec="seconds")


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


@register_gateway("wechat")
class WechatGateway:
    name = "wechat"
    success_reply = ""  # 200 with an empty body accepts
    failure_reply = '{"code":"FAIL","message":"失败"}'

    def __init__(self, app: Any) -> None:
        config = app.config
        self.clock = app.extensions["gzsb.clock"]
        self.max_skew = int(config["PAYMENT_NOTIFY_MAX_SKEW"])
        self.merchant_id = config["PAYMENT_WECHAT_MCHID"]
        self.appid = config["PAYMENT_WECHAT_APPID"]
        self.public_key_id = config["PAYMENT_WECHAT_PUBLIC_KEY_ID"]
        for setting in ("PAYMENT_WECHAT_MCHID", "PAYMENT_WECHAT_APPID", "PAYMENT_WECHAT_PUBLIC_KEY_ID",
                        "PAYMENT_WECHAT_CERT_SERIAL", "PAYMENT_WECHAT_APIV3_KEY"):  # fmt: skip
            if not config[setting]:
                raise ConfigurationError(f"{setting} is not set")
        if len(config["PAYMENT_WECHAT_APIV3_KEY"].encode()) != 32:
            raise ConfigurationError("PAYMENT_WECHAT_APIV3_KEY must be 32 bytes (AES-256)")
        self.sdk = WeChatPay(
            wechatpay_type=WeChatPayType.H5,
            mchid=self.merchant_id,
            private_key=read_key(config["PAYMENT_WECHAT_PRIVATE_KEY_PATH"], "PAYMENT_WECHAT_PRIVATE_KEY_PATH"),
            cert_serial_no=config["PAYMENT_WECHAT_CERT_SERIAL"],
            appid=self.appid,
            apiv3_key=config["PAYMENT_WECHAT_APIV3_KEY"],
            public_key=read_key(config["PAYMENT_WECHAT_PUBLIC_KEY_PATH"], "PAYMENT_WECHAT_PUBLIC_KEY_PATH"),
            public_key_id=self.public_key_id,
            timeout=(config["PAYMENT_QUERY_TIMEOUT"], config["PAYMENT_HTTP_TIMEOUT"]),
        )
        self.sdk._core._gate_way = config["PAYMENT_WECHAT_GATEWAY_URL"].rstrip("/")  # no public setting

    def _request(self, what: str, call: Any, *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        try:
            code, text = call(*args, **kwargs)
        except requests.RequestException as exc:
            raise GatewayError(f"wechat {what} failed: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the SDK raises bare Exception on a bad answer signature
            raise GatewayError(f"wechat {what}: {exc}") from None
        try:
            answer = json.loads(text) if text else {}
        except (TypeError, ValueError):
            raise GatewayError(f"wechat {what}: HTTP {code}, not JSON") from None
        return int(code), answer if isinstance(answer, dict) else {}

    # -- the payer's browser ----------------------------------------------------------------

    def start(self, request: PaymentRequest) -> str:
        code, answer = self._request(
            "pay",
            self.sdk.pay,
            description=request.subject,
            out_trade_no=request.order_number,
            amount={"total": request.amount_fen, "currency": request.currency},
            time_expire=rfc3339(request.expires_at),
            notify_url=request.notify_url,
            scene_info={"payer_client_ip": request.client_ip or "127.0.0.1", "h5_info": {"type": "Wap"}},
            pay_type=WeChatPayType.H5,
        )
        if code != 200 or not answer.get("h5_url"):
            raise GatewayError(f"wechat pay: HTTP {code} {answer.get('code', '')}")
        return f"{answer['h5_url']}&redirect_url={quote(request.return_url, safe='')}"

    # -- notifies: local checks first, then the SDK ------------------------------------------------

    def verify_notify(
        self, params: Mapping[str, str], headers: Mapping[str, str] | None = None, body: str = ""
    ) -> Notification:
        given = {key.lower(): value for key, value in (headers or {}).items()}
        wanted = {name: given.get(name.lower(), "") for name in HEADERS}
        wanted["Wechatpay-Signature-Type"] = given.get("wechatpay-signature-type", SIGNATURE_TYPE)
        if wanted["Wechatpay-Signature"].startswith(PROBE):
            raise BadNotification("wechat notify: a signature probe (WECHATPAY/SIGNTEST/)")
        if not all(wanted.values()):
            raise BadNotification("wechat notify: signature headers missing")
        if wanted["Wechatpay-Serial"] != self.public_key_id:
            # Checked before the SDK: given an unknown serial it would fetch certificates.
            raise BadNotification(f"wechat notify: serial {wanted['Wechatpay-Serial'][:40]!r} is not configured")
        try:
            skew = abs(self.clock().timestamp() - int(wanted["Wechatpay-Timestamp"]))
        except ValueError:
            raise BadNotification("wechat notify: timestamp is not a number") from None
        if skew > self.max_skew:
            raise BadNotification(f"wechat notify: timestamp {skew:.0f} s away from our clock")
        try:
            data = self.sdk.callback(wanted, body)
        except Exception as exc:  # noqa: BLE001 - the SDK raises bare Exception on unknown algorithms
            raise BadNotification(f"wechat notify: {exc}") from None
        if not data:
            raise BadNotification("wechat notify: signature or decryption failed")
        resource = data.get("resource")
        if not isinstance(resource, dict):
            raise BadNotification("wechat notify: no resource")
        if resource.get("appid") != self.appid:
            raise BadNotification(f"wechat notify: appid {resource.get('appid')!r} is not ours")
        return self._notification(resource, notify_id=str(data.get("id", "")))

    def _notification(self, resource: Mapping[str, Any], notify_id: str) -> Notification:
        try:
            amount = resource["amount"]
            state = str(resource["trade_state"])
            total = amount["total"]
            if not isinstance(total, int) or isinstance(total, bool) or total < 0:
                raise BadNotification(f"wechat notify: amount {total!r} is not whole fen")
            return Notification(
                gateway=self.name,
                merchant_id=str(resource["mchid"]),
                order_number=str(resource["out_trade_no"]),
                trade_no=str(resource["transaction_id"]),
                amount_fen=total,
                currency=str(amount.get("currency", "CNY")),
                paid=state == "SUCCESS",
                status=state,
                channel="wechat",
                paid_at=_parse_time(str(resource.get("success_time", ""))),
                notify_id=notify_id,
            )
        except (KeyError, TypeError) as exc:
            raise BadNotification(f"wechat notify: missing {exc}") from None

    # -- server APIs (answers verified by the SDK with the configured public key) -----------------

    def query(self, order_number: str, channel: str) -> TradeStatus | None:
        code, answer = self._request("query", self.sdk.query, out_trade_no=order_number)
        if code == 404 and answer.get("code") == "ORDER_NOT_EXIST":
            return None
        if code != 200 or answer.get("out_trade_no") != order_number or answer.get("mchid") != self.merchant_id:
            raise GatewayError(f"wechat query: HTTP {code} {answer.get('code', '')}")
        state = str(answer.get("trade_state", ""))
        amount = answer.get("amount") or {}
        if state not in PAID_STATES:
            return TradeStatus(order_number, str(answer.get("transaction_id", "")), False, state, 0)
        n = self._notification(answer, notify_id="")
        return TradeStatus(
            order_number=order_number,
            trade_no=n.trade_no,
            paid=True,
            status=state,
            amount_fen=n.amount_fen,
            currency=str(amount.get("currency", "CNY")),
            merchant_id=n.merchant_id,
            channel="wechat",
            paid_at=n.paid_at,
        )

    def close(self, order_number: str, channel: str) -> bool:
        code, answer = self._request("close", self.sdk.close, out_trade_no=order_number)
        if code in (200, 204) or answer.get("code") == "ORDER_NOT_EXIST":
            return True
        if answer.get("code") == "ORDERPAID":
            return False
        raise GatewayError(f"wechat close: HTTP {code} {answer.get('code', '')}")

    def refund(self, order_number: str, trade_no: str, amount_fen: int, refund_no: str, reason: str) -> RefundResult:
        code, answer = self._request(
            "refund",
            self.sdk.refund,
            out_refund_no=refund_no,
            amount={"refund": amount_fen, "total": amount_fen, "currency": "CNY"},
            transaction_id=trade_no,
            reason=reason[:80],
        )
        status = str(answer.get("status", ""))
        if code == 200 and status in ("SUCCESS", "PROCESSING"):
            return RefundResult(refund_no, status)
        return RefundResult(refund_no, "FAILED", f"HTTP {code} {answer.get('code', '')} {status}"[:200])

    def statement(self, day: date) -> list[StatementRow]:
        code, answer = self._request("trade bill", self.sdk.trade_bill, bill_date=day.isoformat())
        if code == 400 and answer.get("code") == "NO_STATEMENT_EXIST":
            return []  # no trade that day
        url = str(answer.get("download_url", ""))
        if code != 200 or not url:
            raise GatewayError(f"wechat trade bill: HTTP {code} {answer.get('code', '')}")
        try:
            status, content = self.sdk.download_bill(url)
        except requests.RequestException as exc:
            raise GatewayError(f"wechat bill download failed: {exc}") from None
        raw = content if isinstance(content, bytes) else str(content).encode()
        try:
            text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        except OSError as exc:
            raise GatewayError(f"wechat bill: {exc}") from None
        # The download is not signed; the signed answer above carries the file's digest.
        if answer.get("hash_type") == "SHA1" and hashlib.sha1(text).hexdigest() != answer.get("hash_value"):  # noqa: S324
            raise GatewayError("wechat bill: the file does not match the signed digest")
        try:
            return parse_wechat_statement(text.decode("utf-8"))
        except (UnicodeDecodeError, StatementError) as exc:
            raise GatewayError(f"wechat bill: {exc}") from None

"""Alipay (支付宝 open platform, RSA2) behind the gateway interface, with python-alipay-sdk.

What the SDK does for us: sign requests with our app key (SHA256withRSA over the sorted
parameters), verify Alipay's signature on notifies and on the signed answers of the server
APIs (trade query, close, refund, bill URL). What it does not, done here: refuse a notify for
another app, accept only RSA2, read the amounts exactly, and map Alipay's words (only
TRADE_SUCCESS / TRADE_FINISHED mean paid) into ours. Verifying a notify needs no network:
Alipay's public key is configured. Repeats of a notify (the same notify_id, over about 25 h)
are acknowledged by the payments service without a second state change.

``PAYMENT_ALIPAY_GATEWAY_URL`` points the SDK's server calls elsewhere (the contract tests run
a gateway on loopback).
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError
from alipay.utils import AliPayConfig

from gzsb.adapters.payments import (
    PAID_STATUSES,
    BadNotification,
    GatewayError,
    Notification,
    PaymentRequest,
    RefundResult,
    TradeStatus,
    parse_yuan,
    register_gateway,
    yuan_text,
)
from gzsb.adapters.payments_statement import StatementError, StatementRow, parse_statement
from gzsb.common.beijing import BEIJING, as_utc
from gzsb.errors import ConfigurationError

log = logging.getLogger(__name__)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
OK = "10000"


def read_key(path: str, setting: str) -> str:
    if not path:
        raise ConfigurationError(f"{setting} is not set")
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{setting}: cannot read {path}: {exc}") from None


def beijing_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=BEIJING)
    except (TypeError, ValueError):
        raise BadNotification(f"time {text!r} is not yyyy-MM-dd HH:mm:ss") from None


class BeijingAliPay(AliPay):
    """The SDK stamps requests with the machine's local time; Alipay reads Beijing time."""

    def build_body(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        data = dict(super().build_body(*args, **kwargs))
        data["timestamp"] = datetime.now(BEIJING).strftime(TIME_FORMAT)
        return data


@register_gateway("alipay")
class AlipayGateway:
    name = "alipay"
    success_reply = "success"
    failure_reply = "fail"

    def __init__(self, app: Any) -> None:
        config = app.config
        self.app_id = config["PAYMENT_ALIPAY_APP_ID"]
        if not self.app_id:
            raise ConfigurationError("PAYMENT_ALIPAY_APP_ID is not set")
        self.merchant_id = self.app_id  # what a notify names as its merchant
        self.sdk = BeijingAliPay(
            appid=self.app_id,
            app_private_key_string=read_key(
                config["PAYMENT_ALIPAY_PRIVATE_KEY_PATH"], "PAYMENT_ALIPAY_PRIVATE_KEY_PATH"
            ),
            alipay_public_key_string=read_key(
                config["PAYMENT_ALIPAY_PUBLIC_KEY_PATH"], "PAYMENT_ALIPAY_PUBLIC_KEY_PATH"
            ),
            sign_type="RSA2",
            config=AliPayConfig(timeout=config["PAYMENT_QUERY_TIMEOUT"]),
        )
        self.sdk._gateway = config["PAYMENT_ALIPAY_GATEWAY_URL"]  # the SDK has no public setting for it
        self.gateway_url = config["PAYMENT_ALIPAY_GATEWAY_URL"]

    # -- the payer's browser --------------------------------------------------------------

    def start(self, request: PaymentRequest) -> str:
        query = self.sdk.api_alipay_trade_wap_pay(
            subject=request.subject,
            out_trade_no=request.order_number,
            total_amount=yuan_text(request.amount_fen),
            return_url=request.return_url,
            notify_url=request.notify_url,
            time_expire=as_utc(request.expires_at).astimezone(BEIJING).strftime(TIME_FORMAT),
        )
        return f"{self.gateway_url}?{query}"

    # -- notifies: local checks only -----------------------------------------------------------

    def verify_notify(
        self, params: Mapping[str, str], headers: Mapping[str, str] | None = None, body: str = ""
    ) -> Notification:
        data = dict(params)
        signature = data.pop("sign", "")
        sign_type = data.pop("sign_type", "")
        if sign_type != "RSA2" or not signature:
            raise BadNotification(f"alipay notify: sign_type {sign_type!r} is not RSA2 or no sign")
        try:
            verified = self.sdk.verify(data, signature)
        except (AliPayException, ValueError, TypeError) as exc:  # binascii.Error is a ValueError
            raise BadNotification(f"alipay notify: signature unreadable: {exc}") from None
        if not verified:
            raise BadNotification("alipay notify: signature does not verify")
        if data.get("app_id") != self.app_id:
            raise BadNotification(f"alipay notify: app_id {data.get('app_id')!r} is not ours")
        try:
            status = data["trade_status"]
            return Notification(
                gateway=self.name,
                merchant_id=data["app_id"],
                order_number=data["out_trade_no"],
                trade_no=data["trade_no"],
                amount_fen=parse_yuan(data["total_amount"]),
                currency="CNY",  # Alipay's domestic notify carries no currency: it is yuan
                paid=status in PAID_STATUSES,
                status=status,
                channel="alipay",
                paid_at=beijing_time(data["gmt_payment"]) if data.get("gmt_payment") else None,
                notify_id=data.get("notify_id", ""),
            )
        except KeyError as exc:
            raise BadNotification(f"alipay notify: missing {exc.args[0]}") from None

    # -- server APIs (signed answers, verified by the SDK) ------------------------------------------

    def _call(self, method: str, biz: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(self.sdk.server_api(method, biz))
        except AliPayValidationError:
            raise GatewayError(f"alipay {method}: the answer's signature does not verify") from None
        except AliPayException as exc:
            raise GatewayError(f"alipay {method}: {exc}") from None
        except (URLError, OSError, ValueError) as exc:
            raise GatewayError(f"alipay {method} failed: {exc}") from None

    def query(self, order_number: str, channel: str) -> TradeStatus | None:
        answer = self._call("alipay.trade.query", {"out_trade_no": order_number})
        if answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return None
        if answer.get("code") != OK or answer.get("out_trade_no") != order_number:
            raise GatewayError(f"alipay query: {answer.get('code')} {answer.get('sub_code')}")
        try:
            status = answer["trade_status"]
            return TradeStatus(
                order_number=order_number,
                trade_no=answer["trade_no"],
                paid=status in PAID_STATUSES,
                status=status,
                amount_fen=parse_yuan(answer["total_amount"]),
                currency="CNY",
                merchant_id=self.app_id,  # the answer is signed for our app: it is ours
                channel="alipay",
                paid_at=beijing_time(answer["send_pay_date"]) if answer.get("send_pay_date") else None,
            )
        except (KeyError, BadNotification) as exc:
            raise GatewayError(f"alipay query: malformed answer: {exc}") from None

    def close(self, order_number: str, channel: str) -> bool:
        answer = self._call("alipay.trade.close", {"out_trade_no": order_number})
        if answer.get("code") == OK or answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return True  # closed, or the payer never opened it (nothing to take money on)
        if answer.get("sub_code") == "ACQ.TRADE_STATUS_ERROR":
            return False
        raise GatewayError(f"alipay close: {answer.get('code')} {answer.get('sub_code')}")

    def refund(self, order_number: str, trade_no: str, amount_fen: int, refund_no: str, reason: str) -> RefundResult:
        answer = self._call(
            "alipay.trade.refund",
            {
                "out_trade_no": order_number,
                "trade_no": trade_no,
                "refund_amount": yuan_text(amount_fen),
                "out_request_no": refund_no,
                "refund_reason": reason[:80],
            },
        )
        if answer.get("code") == OK:
            return RefundResult(refund_no, "SUCCESS")
        return RefundResult(refund_no, "FAILED", f"{answer.get('sub_code', '')} {answer.get('sub_msg', '')}"[:200])

    def statement(self, day: date) -> list[StatementRow]:
        answer = self._call(
            "alipay.data.dataservice.bill.downloadurl.query", {"bill_type": "trade", "bill_date": day.isoformat()}
        )
        url = answer.get("bill_download_url")
        if answer.get("code") != OK or not url:
            raise GatewayError(f"alipay statement: {answer.get('code')} {answer.get('sub_code')}")
        try:
            archive = zipfile.ZipFile(io.BytesIO(urlopen(url, timeout=30).read()))  # noqa: S310 - Alipay's signed URL
        except (URLError, OSError, zipfile.BadZipFile) as exc:
            raise GatewayError(f"alipay statement download failed: {exc}") from None
        rows: list[StatementRow] = []
        for member in archive.namelist():
            if member.endswith(".csv") and "汇总" not in member:
                raw = archive.read(member)
                try:
                    rows.extend(parse_statement(raw.decode("gbk", errors="strict")))
                except UnicodeDecodeError:
                    rows.extend(parse_statement(raw.decode("utf-8")))
                except StatementError as exc:
                    raise GatewayError(f"alipay statement {member}: {exc}") from None
        log.info("alipay statement %s: %d row(s)", day, len(rows))
        return rows

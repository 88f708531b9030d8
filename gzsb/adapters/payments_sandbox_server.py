"""The sandbox gateway's own side (on a real gateway: its servers), on the app's database and
clock: a ledger of trades (``SandboxTrade``), the cashier, the asynchronous signed notify with
retries (sent by a Huey task, ``gzsb.worker.tasks.sandbox_notify``), and the signed query,
close, refund and daily statement (对账单) APIs. It answers ``SandboxGateway``
(``gzsb.adapters.payments_sandbox``) only through HTTP-shaped, HMAC-signed messages.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gzsb.adapters.payments import (
    PAID_STATUSES,
    BadNotification,
    Transport,
    parse_time,
    parse_yuan,
    signature_ok,
    signed,
    time_text,
    yuan_text,
)
from gzsb.adapters.payments_statement import StatementRow, beijing_day, build_statement
from gzsb.common.beijing import as_utc
from gzsb.errors import ConflictError, NotFound, ServiceError
from gzsb.models import SandboxTrade

log = logging.getLogger(__name__)


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

"""The daily statement (对账单) in the layout of Alipay's trade statement (业务明细).

The sandbox writes its statement in this layout and the Alipay adapter reads the one it
downloads with the same parser, so reconciliation is tested on the format a real gateway
uses: ``#`` comment lines around a CSV table whose header names the columns; a refund is a
row of business type 退款 with a negative amount. Amounts are yuan with two decimals.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from gzsb.common.beijing import BEIJING, as_utc

TRADE_NO, ORDER_NO, KIND, SUBJECT, CREATED, FINISHED, AMOUNT, RECEIVED, REFUND_NO = (
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "订单金额（元）",
    "商家实收（元）",
    "退款批次号/请求号",
)
HEADER = (TRADE_NO, ORDER_NO, KIND, SUBJECT, CREATED, FINISHED, AMOUNT, RECEIVED, REFUND_NO)
KINDS = {"交易": "pay", "退款": "refund"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class StatementError(ValueError):
    """The statement is not in the layout we read."""


@dataclass(frozen=True)
class StatementRow:
    """One line of a gateway's daily statement: money in (pay) or out (refund)."""

    trade_no: str
    order_number: str
    kind: str  # pay / refund
    amount_fen: int
    at: datetime | None = None


def beijing_day(moment: datetime) -> date:
    return as_utc(moment).astimezone(BEIJING).date()


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def build_statement(rows: Iterable[StatementRow], subject: str = "报名考试费") -> str:
    out = io.StringIO()
    out.write("#支付宝业务明细查询\n#账号：[sandbox]\n")
    out.write("#-----------------------------------------业务明细列表-----------------------------------------\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    count = 0
    for row in rows:
        amount = -row.amount_fen if row.kind == "refund" else row.amount_fen
        at = as_utc(row.at).astimezone(BEIJING).strftime(TIME_FORMAT) if row.at else ""
        kind = next(word for word, code in KINDS.items() if code == row.kind)
        writer.writerow(
            (row.trade_no + "\t", row.order_number + "\t", kind, subject, at, at, _yuan(amount), _yuan(amount), "")
        )
        count += 1
    out.write("#-----------------------------------------业务明细列表结束------------------------------------\n")
    out.write(f"#交易合计：{count}笔\n")
    return out.getvalue()


def _fen(text: str) -> int:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise StatementError(f"amount {text!r} is not a number") from None
    fen = value * 100
    if fen != fen.to_integral_value():
        raise StatementError(f"amount {text!r} is not a whole number of fen")
    return int(fen)


def parse_statement(text: str) -> list[StatementRow]:
    table = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not table:
        return []
    reader = csv.DictReader(io.StringIO("\n".join(table)))
    missing = {TRADE_NO, ORDER_NO, KIND, AMOUNT} - set(reader.fieldnames or ())
    if missing:
        raise StatementError(f"statement lacks the columns {sorted(missing)}")
    rows = []
    for line in reader:
        kind = KINDS.get((line[KIND] or "").strip())
        if kind is None:
            continue  # other business types (e.g. fees) are not payments
        finished = (line.get(FINISHED) or "").strip()
        at = datetime.strptime(finished, TIME_FORMAT).replace(tzinfo=BEIJING) if finished else None
        rows.append(
            StatementRow(
                trade_no=line[TRADE_NO].strip(),
                order_number=line[ORDER_NO].strip(),
                kind=kind,
                amount_fen=abs(_fen(line[AMOUNT])),
                at=at,
            )
        )
    return rows


# -- WeChat Pay's trade bill (交易账单, bill_type ALL): every value prefixed with a backquote --

WX_TRADE_NO, WX_ORDER_NO, WX_STATE, WX_SETTLED, WX_REFUNDED, WX_TIME = (
    "微信订单号",
    "商户订单号",
    "交易状态",
    "应结订单金额",
    "退款金额",
    "交易时间",
)
WX_KINDS = {"SUCCESS": "pay", "REFUND": "refund"}


def parse_wechat_statement(text: str) -> list[StatementRow]:
    lines = text.lstrip("\ufeff").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(WX_TIME)), None)
    if start is None:
        return []
    table = []
    for line in lines[start:]:
        if line.startswith("总交易单数"):
            break  # the summary follows
        table.append(line)
    reader = csv.DictReader(io.StringIO("\n".join(table)))
    missing = {WX_TRADE_NO, WX_ORDER_NO, WX_STATE, WX_SETTLED, WX_REFUNDED} - set(reader.fieldnames or ())
    if missing:
        raise StatementError(f"WeChat Pay bill lacks the columns {sorted(missing)}")
    rows = []
    for raw in reader:
        line = {key: (value or "").strip().lstrip("`") for key, value in raw.items() if key}
        kind = WX_KINDS.get(line[WX_STATE])
        if kind is None:
            continue
        at = datetime.strptime(line[WX_TIME], TIME_FORMAT).replace(tzinfo=BEIJING) if line.get(WX_TIME) else None
        amount = line[WX_SETTLED] if kind == "pay" else line[WX_REFUNDED]
        rows.append(StatementRow(line[WX_TRADE_NO], line[WX_ORDER_NO], kind, abs(_fen(amount)), at))
    return rows

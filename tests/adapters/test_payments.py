"""Signing and verification, the gateway registry, and the sandbox gateway's own side
(trades, cashier rules, notify delivery with retries, the signed query API)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import select

from gzsb.adapters import payments as pay
from gzsb.adapters.payments import (
    BadNotification,
    PaymentRequest,
    gateway,
    parse_yuan,
    sign,
    signature_ok,
    signed,
)
from gzsb.adapters.payments_sandbox_server import Sandbox, SandboxError
from gzsb.errors import ConfigurationError, ConflictError
from gzsb.extensions import db
from gzsb.models import SandboxTrade

KEY = "unit-test-key"


# -- signing ---------------------------------------------------------------------------------


def test_sign_is_hmac_sha256_over_sorted_nonempty_pairs_without_sign_fields() -> None:
    params = {"b": "2", "a": "1", "empty": "", "sign": "x", "sign_type": "HMAC-SHA256", "c": "三"}
    expected = hmac.new(KEY.encode(), "a=1&b=2&c=三".encode(), hashlib.sha256).hexdigest().upper()
    assert sign(params, KEY) == expected


def test_signed_params_verify_and_any_change_breaks_them() -> None:
    params = signed({"out_trade_no": "GZSB1", "total_amount": "160.00", "trade_status": "TRADE_SUCCESS"}, KEY)
    assert params["sign_type"] == "HMAC-SHA256" and signature_ok(params, KEY)
    assert signature_ok({**params, "sign": params["sign"].lower()}, KEY)  # hex case does not matter
    for field, value in [("total_amount", "0.01"), ("out_trade_no", "GZSB2"), ("trade_status", "TRADE_CLOSED")]:
        assert not signature_ok({**params, field: value}, KEY), field
    assert not signature_ok({**params, "extra": "1"}, KEY)
    assert not signature_ok(params, "another-key")
    assert not signature_ok({k: v for k, v in params.items() if k != "sign"}, KEY)
    assert not signature_ok({**params, "sign_type": "MD5"}, KEY)
    assert not signature_ok({**params, "sign": "签名"}, KEY)  # non-ASCII: refused, not an exception


@pytest.mark.parametrize(("text", "fen"), [("160.00", 16000), ("0.01", 1), ("160", 16000), ("12.5", 1250)])
def test_amounts_are_parsed_exactly(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["1.005", "abc", "-1.00", "NaN", "Infinity", ""])
def test_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(BadNotification):
        parse_yuan(text)


# -- the registry -------------------------------------------------------------------------------


def test_unknown_gateway_names_the_known_ones(app) -> None:
    with pytest.raises(ConfigurationError, match="sandbox"):
        gateway("no-such-gateway", app)
    assert gateway("sandbox", app).name == "sandbox"


# -- the sandbox gateway as the merchant uses it --------------------------------------------


def request_for(clock, number: str = "GZSB20261201ABC001", channel: str = "alipay") -> PaymentRequest:
    return PaymentRequest(
        order_number=number,
        amount_fen=16000,
        currency="CNY",
        subject="报名考试费",
        channel=channel,
        notify_url="http://localhost/payment/notify/sandbox",
        return_url="http://localhost/payment/orders/x/result",
        expires_at=clock.now + timedelta(hours=24),
    )


def start_params(app, clock, **kw) -> dict[str, str]:
    url = gateway("sandbox", app).start(request_for(clock, **kw))
    parts = urlsplit(url)
    assert parts.path == "/sandbox/gateway"
    return dict(parse_qsl(parts.query))


def test_start_sends_a_signed_page_pay_request_the_sandbox_accepts(app, clock) -> None:
    params = start_params(app, clock)
    assert params["total_amount"] == "160.00" and params["merchant_id"] == app.config["PAYMENT_MERCHANT_ID"]
    assert signature_ok(params, app.config["PAYMENT_SIGN_KEY"])
    box = Sandbox.of(app, db.session)
    trade = box.open_trade(params)
    assert (trade.out_trade_no, trade.amount_fen, trade.status) == ("GZSB20261201ABC001", 16000, "WAIT_BUYER_PAY")
    # Opening the cashier again for the same order and channel finds the same trade.
    assert box.open_trade(params).trade_no == trade.trade_no
    other = box.open_trade(start_params(app, clock, channel="wechat"))
    assert other.trade_no != trade.trade_no


def test_sandbox_refuses_a_tampered_request(app, clock) -> None:
    params = start_params(app, clock)
    with pytest.raises(SandboxError):
        Sandbox.of(app, db.session).open_trade({**params, "total_amount": "0.01"})
    assert db.session.scalars(select(SandboxTrade)).all() == []


def paid_trade(app, clock) -> SandboxTrade:
    box = Sandbox.of(app, db.session)
    trade = box.open_trade(start_params(app, clock))
    return box.pay(trade.trade_no)


def test_notify_of_a_paid_trade_verifies_into_a_notification(app, clock) -> None:
    trade = paid_trade(app, clock)
    params = Sandbox.of(app, db.session).notify_params(trade)
    n = gateway("sandbox", app).verify_notify(params)
    assert (n.order_number, n.trade_no, n.amount_fen, n.currency, n.paid) == (
        "GZSB20261201ABC001", trade.trade_no, 16000, "CNY", True,
    )  # fmt: skip
    assert n.paid_at == clock.now.replace(microsecond=0)
    with pytest.raises(BadNotification):
        gateway("sandbox", app).verify_notify({**params, "total_amount": "1.00"})
    missing = signed({k: v for k, v in params.items() if k not in ("trade_no", "sign")}, app.config["PAYMENT_SIGN_KEY"])
    with pytest.raises(BadNotification, match="trade_no"):
        gateway("sandbox", app).verify_notify(missing)


def test_the_cashier_refuses_to_take_money_after_the_time_limit(app, clock) -> None:
    box = Sandbox.of(app, db.session)
    trade = box.open_trade(start_params(app, clock))
    clock.advance(hours=25)
    with pytest.raises(ConflictError):
        box.pay(trade.trade_no)
    assert box.trade(trade.trade_no).status == "TRADE_CLOSED"


class Recorder:
    """A fake of the network between the gateway and us: answers what it is told."""

    def __init__(self, *answers: tuple[int, str] | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, dict[str, str]]] = []

    def post(self, url: str, data, timeout: float) -> tuple[int, str]:
        self.sent.append((url, dict(data)))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_notify_is_retried_on_a_growing_schedule_until_success_then_repeated_once(app, clock) -> None:
    trade = paid_trade(app, clock)
    box = Sandbox.of(app, db.session)
    delays = app.config["PAYMENT_SANDBOX_RETRY_DELAYS"]
    net = Recorder(ConnectionError("refused"), (500, "oops"), (200, "fail"), (200, "success"), (200, "success"))
    assert box.deliver_notify(trade.trade_no, net, 0) == delays[0]
    assert box.deliver_notify(trade.trade_no, net, 1) == delays[1]
    assert box.deliver_notify(trade.trade_no, net, 2) == delays[2]
    assert list(delays[:3]) == sorted(delays[:3]) and delays[0] < delays[2]
    assert box.trade(trade.trade_no).notify_acked_at is None
    # Acknowledged: one more send later (gateways repeat), then nothing.
    assert box.deliver_notify(trade.trade_no, net, 3) == app.config["PAYMENT_SANDBOX_REPEAT_AFTER"]
    assert box.trade(trade.trade_no).notify_acked_at is not None
    assert box.deliver_notify(trade.trade_no, net, 4) is None
    assert box.trade(trade.trade_no).notify_attempts == 5
    urls = {url for url, _ in net.sent}
    assert urls == {"http://localhost/payment/notify/sandbox"}
    # Every send is signed and has its own notify id.
    assert all(signature_ok(data, app.config["PAYMENT_SIGN_KEY"]) for _, data in net.sent)
    assert len({data["notify_id"] for _, data in net.sent}) == 5


def test_notify_gives_up_after_the_last_delay(app, clock) -> None:
    trade = paid_trade(app, clock)
    box = Sandbox.of(app, db.session)
    delays = app.config["PAYMENT_SANDBOX_RETRY_DELAYS"]
    net = Recorder(*[(503, "")] * (len(delays) + 1))
    results = [box.deliver_notify(trade.trade_no, net, attempt) for attempt in range(len(delays) + 1)]
    assert results == [*delays, None]


def test_unpaid_trades_send_no_notify(app, clock) -> None:
    box = Sandbox.of(app, db.session)
    trade = box.open_trade(start_params(app, clock))
    net = Recorder()
    assert box.deliver_notify(trade.trade_no, net, 0) is None and net.sent == []


def test_query_api_answers_signed_and_refuses_unsigned_requests(app, clock) -> None:
    box = Sandbox.of(app, db.session)
    key = app.config["PAYMENT_SIGN_KEY"]
    ask = signed({"merchant_id": app.config["PAYMENT_MERCHANT_ID"], "out_trade_no": "GZSB20261201ABC001"}, key)
    assert box.query(ask)["code"] == "TRADE_NOT_EXIST"
    trade = paid_trade(app, clock)
    answer = box.query(ask)
    assert signature_ok(answer, key)
    assert (answer["code"], answer["trade_no"], answer["trade_status"]) == ("SUCCESS", trade.trade_no, "TRADE_SUCCESS")
    with pytest.raises(SandboxError):
        box.query({**ask, "sign": "0" * 64})


def test_merchant_query_goes_over_the_transport_and_checks_the_answer(app, clock) -> None:
    gw = gateway("sandbox", app)
    assert gw.query("GZSB20261201ABC001", "alipay") is None
    trade = paid_trade(app, clock)
    status = gw.query("GZSB20261201ABC001", "alipay")
    assert status is not None and status.paid and status.trade_no == trade.trade_no
    # An answer someone else signed is not believed.
    pay.TRANSPORTS["forged"] = lambda _app: Recorder((200, '{"code": "SUCCESS", "sign": "00"}'))
    try:
        # A sandbox elsewhere is asked through the configured transport.
        app.config.update(PAYMENT_SANDBOX_TRANSPORT="forged", PAYMENT_SANDBOX_URL="http://sandbox.invalid")
        with pytest.raises(pay.GatewayError):
            gateway("sandbox", app).query("GZSB20261201ABC001", "alipay")
    finally:
        app.config.update(PAYMENT_SANDBOX_TRANSPORT="wsgi", PAYMENT_SANDBOX_URL="")
        del pay.TRANSPORTS["forged"]


def test_times_are_utc_seconds() -> None:
    moment = datetime(2026, 12, 1, 10, 0, 5, 123, tzinfo=UTC)
    assert pay.parse_time(pay.time_text(moment)) == moment.replace(microsecond=0)
    with pytest.raises(BadNotification):
        pay.parse_time("2026-12-01 10:00")

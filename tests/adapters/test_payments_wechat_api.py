"""WeChat Pay v3's server API played on loopback by a fake that signs its answers the way
WeChat Pay does (wechatpayv3's own signing, with the test's WeChat Pay key) and checks that
our requests carry the merchant's signature. Through it: the cashier URL, the trade query
standing in for a lost notify, an answer signed by someone else, and the automatic refund.
Alipay's refund goes through the same kind of fake (tests/adapters/test_payments_contract.py)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import secrets
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import select
from wechatpayv3.utils import load_private_key, rsa_sign
from werkzeug.wrappers import Request, Response

from gzsb.bootstrap import engine
from gzsb.extensions import db
from gzsb.models import Outbox, Payment
from gzsb.worker import outbox
from gzsb.worker import tasks as jobs
from gzsb.worker.drain import fire_due_timers
from tests.adapters.test_payments_contract import (
    MCHID,
    PUBKEY_ID,
    WX_APPID,
    FakeAlipay,
    alipay_notify,
    footprint,
    post_wechat,
    wechat_notify,
)
from tests.enrollment.test_views import login
from tests.payments.test_service import order_of, to_order
from tests.payments.test_views import token

AUTH = re.compile(r'(\w+)="([^"]*)"')


class FakeWechat:
    def __init__(self, pems: dict[str, tuple[str, str]], order_number: str, paid: bool, signer: str = "wechat") -> None:
        self.key = load_private_key(pems[signer][0])
        self.merchant = load_pem_public_key(pems["merchant"][1].encode())
        self.order_number, self.paid = order_number, paid
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.bill = ""
        self.transaction_id = "4200000000202612010000000077"

    def _check_merchant_signature(self, request: Request) -> None:
        scheme, _, rest = request.headers.get("Authorization", "").partition(" ")
        fields = dict(AUTH.findall(rest))
        assert scheme == "WECHATPAY2-SHA256-RSA2048" and fields["mchid"] == MCHID
        path = request.full_path.rstrip("?")
        body = request.get_data(as_text=True)
        message = f"{request.method}\n{path}\n{fields['timestamp']}\n{fields['nonce_str']}\n{body}\n"
        self.merchant.verify(base64.b64decode(fields["signature"]), message.encode(), PKCS1v15(), SHA256())

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        self._check_merchant_signature(request)
        data = request.get_json(silent=True) or {}
        self.calls.append((request.method, request.path, data))
        status, answer = 200, {}
        if request.path == "/v3/pay/transactions/h5":
            answer = {"h5_url": "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx01&package=1"}
        elif request.path.endswith("/close"):
            status = 204
        elif request.path.startswith("/v3/pay/transactions/out-trade-no/"):
            answer = {
                "mchid": MCHID, "appid": WX_APPID, "out_trade_no": self.order_number,
                "transaction_id": self.transaction_id,
                "trade_state": "SUCCESS" if self.paid else "NOTPAY",
                "success_time": "2026-12-01T09:59:58+08:00",
                "amount": {"total": 16000, "payer_total": 16000, "currency": "CNY"},
            }  # fmt: skip
        elif request.path == "/v3/bill/tradebill":
            digest = hashlib.sha1(self.bill.encode()).hexdigest()  # noqa: S324 - WeChat Pay's digest
            url = f"{request.host_url.rstrip('/')}/v3/billdownload/file?token=t0k"
            answer = {"download_url": url, "hash_type": "SHA1", "hash_value": digest}
        elif request.path == "/v3/billdownload/file":
            raw = gzip.compress(self.bill.encode())
            return Response(raw, content_type="application/octet-stream")(environ, start_response)
        elif request.path == "/v3/refund/domestic/refunds":
            answer = {"out_refund_no": data.get("out_refund_no"), "refund_id": "50300000002026", "status": "SUCCESS"}
        body = json.dumps(answer) if answer else ""
        stamp, nonce = str(int(time.time())), secrets.token_hex(16)
        headers = {
            "Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": PUBKEY_ID,
            "Wechatpay-Signature": rsa_sign(self.key, f"{stamp}\n{nonce}\n{body}\n"),
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }  # fmt: skip
        return Response(body, status=status, headers=headers, content_type="application/json")(environ, start_response)


def use(app, serve, fake) -> None:  # type: ignore[no-untyped-def]
    app.config["PAYMENT_WECHAT_GATEWAY_URL"] = serve(fake).removesuffix("/gateway.do")


def test_wechat_cashier_is_the_h5_url_with_our_return(app, keys, ordered, no_network, serve) -> None:
    fake = FakeWechat(keys, order_of(ordered).number, paid=False)
    use(app, serve, fake)
    client = app.test_client()
    login(client, ordered)
    number = order_of(ordered).number
    page = client.get(f"/payment/orders/{number}/pay")
    sent = client.post(f"/payment/orders/{number}/pay", data={"channel": "wechat", "csrf_token": token(page.text)})
    assert sent.status_code == 303 and sent.location.startswith("https://wx.tenpay.com/")
    assert "redirect_url=http%3A%2F%2Flocalhost%2Fpayment%2Forders%2F" in sent.location
    method, path, body = fake.calls[0]
    assert (method, path) == ("POST", "/v3/pay/transactions/h5")
    assert body["out_trade_no"] == number and body["amount"] == {"total": 16000, "currency": "CNY"}
    assert body["notify_url"] == "http://localhost/payment/notify/wechat"


def test_wechat_lost_notify_a_signed_query_answer_pays(app, keys, ordered, no_network, serve) -> None:
    use(app, serve, FakeWechat(keys, order_of(ordered).number, paid=True))
    client = app.test_client()
    login(client, ordered)
    page = client.get(f"/payment/orders/{order_of(ordered).number}/result?channel=wechat").text
    assert "支付成功" in page and footprint(ordered)[0] == "approved"


def test_wechat_query_answer_signed_by_another_key_is_not_believed(app, keys, ordered, no_network, serve) -> None:
    use(app, serve, FakeWechat(keys, order_of(ordered).number, paid=True, signer="foreign"))
    client = app.test_client()
    login(client, ordered)
    before = footprint(ordered)
    page = client.get(f"/payment/orders/{order_of(ordered).number}/result?channel=wechat").text
    assert "支付处理中" in page and footprint(ordered) == before


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_a_late_payment_is_refunded_through_the_gateway(app, clock, keys, ordered, no_network, serve, queue, channel):
    order = order_of(ordered)
    if channel == "wechat":
        fake: Any = FakeWechat(keys, order.number, paid=True)
        use(app, serve, fake)
    else:
        fake = FakeAlipay(keys, order.number, paid=True)
        app.config["PAYMENT_ALIPAY_GATEWAY_URL"] = serve(fake)
    clock.advance(hours=24, minutes=1)
    assert fire_due_timers(db.session, engine(), clock.now) == 1  # the order expired unpaid
    if channel == "wechat":
        body, headers = wechat_notify(keys, order, clock.now.timestamp())
        assert post_wechat(app, body, headers).status_code == 200
    else:
        reply = app.test_client().post("/payment/notify/alipay", data=alipay_notify(keys, order))
        assert reply.text == "success"
    payment = db.session.scalars(select(Payment)).one()
    assert payment.status == "refund_pending"
    calls_before = len(fake.calls)  # the notify itself called nobody
    assert calls_before == 0
    assert outbox.redispatch(db.session, jobs.enqueue_outbox, clock.now) >= 1
    db.session.expire_all()
    payment = db.session.get(Payment, payment.id)
    assert (payment.status, payment.refund_status) == ("refunded", "success")
    if channel == "wechat":
        (refund,) = [call for call in fake.calls if call[1] == "/v3/refund/domestic/refunds"]
        assert refund[2]["out_refund_no"] == payment.refund_no and refund[2]["amount"]["refund"] == 16000
    else:
        assert "alipay.trade.refund" in fake.calls
    assert db.session.scalars(select(Outbox.payload).where(Outbox.kind == "sms")).all()[-1] == {
        "template": "payment_refunded"
    }
    assert no_network == []


BILL_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注"
)


def bill_row(trade_no: str, order_number: str, state: str = "SUCCESS", fen: int = 16000) -> str:
    yuan = f"{fen // 100}.{fen % 100:02d}"
    refund = yuan if state == "REFUND" else "0.00"
    values = [
        "2026-12-01 09:59:58", WX_APPID, MCHID, "0", "", trade_no, order_number, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        "MWEB", state, "OTHERS", "CNY", yuan, "0.00", "0", "0", refund, "0.00", "", "", "报名考试费", "",
        "0.96000", "0.60%", yuan, refund, "",
    ]  # fmt: skip
    return ",".join(f"`{value}" for value in values)


def bill(*rows: str) -> str:
    summary = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    return "\n".join([BILL_HEADER, *rows, summary, f"`{len(rows)},`0.00,`0.00,`0.00,`0.00,`0.00,`0.00"]) + "\n"


def test_reconcile_wechat_clean_then_a_missing_notify_applied(app, keys, make_applicant, gateways, no_network, serve):
    app.config["PAYMENT_CHANNELS"] = {"wechat": "wechat"}
    paid_here, lost = make_applicant(), make_applicant()
    to_order(paid_here)
    to_order(lost)
    fake = FakeWechat(keys, order_of(paid_here).number, paid=True)
    use(app, serve, fake)
    client = app.test_client()
    login(client, paid_here)
    assert "支付成功" in client.get(f"/payment/orders/{order_of(paid_here).number}/result?channel=wechat").text
    fake.bill = bill(bill_row("4200000000202612010000000077", order_of(paid_here).number))
    runner = app.test_cli_runner()
    clean = runner.invoke(args=["payments", "reconcile", "--date", "2026-12-01"])
    assert clean.exit_code == 0 and "0 difference(s)" in clean.output
    # The other student paid at WeChat Pay; its notify never came and nobody asked.
    fake.bill = bill(
        bill_row("4200000000202612010000000077", order_of(paid_here).number),
        bill_row("4200000000202612010000000078", order_of(lost).number),
    )
    dirty = runner.invoke(args=["payments", "reconcile", "--date", "2026-12-01"])
    assert dirty.exit_code == 1 and "wechat missing_here order " + order_of(lost).number in dirty.output
    fake.order_number = order_of(lost).number  # the trade query answers for that order
    fake.transaction_id = "4200000000202612010000000078"
    applied = runner.invoke(args=["payments", "reconcile", "--date", "2026-12-01", "--apply"])
    assert applied.exit_code == 0 and footprint(lost)[0] == "approved"
    assert runner.invoke(args=["payments", "reconcile", "--date", "2026-12-01"]).exit_code == 0
    assert no_network == []

"""Contract tests: the real SDKs play the gateway. Throw-away RSA keys are made here; Alipay's
notifies and query answers are signed with python-alipay-sdk, WeChat Pay's notifies with
wechatpayv3's own signing and AES-256-GCM, exactly as the gateways send them, and posted to our
endpoint. A genuine notify is accepted once; every forgery or replay is refused with the
gateway's failure reply (or acknowledged as a duplicate), changes nothing, and no outbound
connection is opened (the network is blocked for anything but loopback)."""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import parse_qsl

import pytest
from alipay import AliPay
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select
from wechatpayv3.utils import load_private_key, rsa_sign
from werkzeug.wrappers import Request, Response

from gzsb.app import create_app
from gzsb.config import TestConfig
from gzsb.errors import ConfigurationError
from gzsb.extensions import db
from gzsb.models import Application, HistoryEvent, Payment, PaymentOrder
from tests.enrollment.test_views import login
from tests.payments.test_service import order_of

APP_ID = "2021000000000077"
MCHID = "1900000109"
WX_APPID = "wxd678efh567hg6787"
PUBKEY_ID = "PUB_KEY_ID_0114232134912410000000000000"
APIV3 = "a" * 16 + "b" * 16


def pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def alipay_signer(keys, who: str = "alipay") -> AliPay:
    """The SDK with the gateway's private key: it signs as Alipay does."""
    return AliPay(appid=APP_ID, app_private_key_string=keys[who][0], alipay_public_key_string=keys["app"][1])


def alipay_notify(keys, order: PaymentOrder, *, who: str = "alipay", **over: str) -> dict[str, str]:
    data = {
        "notify_time": "2026-12-01 10:00:00",
        "notify_type": "trade_status_sync",
        "notify_id": secrets.token_hex(16),
        "app_id": APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": "2026120122001400000000000001",
        "out_trade_no": order.number,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": f"{order.amount_fen // 100}.{order.amount_fen % 100:02d}",
        "gmt_payment": "2026-12-01 09:59:58",
    }
    data.update(over)
    signed = dict(parse_qsl(alipay_signer(keys, who).sign_data(dict(data))))
    signed["sign_type"] = "RSA2"
    return signed


def footprint(who) -> tuple[object, ...]:
    db.session.expire_all()
    record = db.session.get(Application, who.application_id)
    return (
        record.state,
        record.seq,
        db.session.scalar(select(func.count()).select_from(HistoryEvent)),
        db.session.scalar(select(func.count()).select_from(Payment)),
    )


# -- Alipay --------------------------------------------------------------------------------------


def test_alipay_genuine_notify_is_accepted_once(app, keys, ordered, no_network) -> None:
    client = app.test_client()
    params = alipay_notify(keys, order_of(ordered))
    first = client.post("/payment/notify/alipay", data=params)
    assert (first.status_code, first.text) == (200, "success")
    assert footprint(ordered)[0] == "approved"
    after = footprint(ordered)
    again = client.post("/payment/notify/alipay", data=params)  # Alipay's retry: same notify_id
    assert (again.status_code, again.text) == (200, "success") and footprint(ordered) == after
    assert no_network == []


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda keys, order: {**alipay_notify(keys, order), "total_amount": "0.01"}, id="tampered-amount"),
        pytest.param(lambda keys, order: alipay_notify(keys, order, who="foreign"), id="foreign-key"),
        pytest.param(lambda keys, order: alipay_notify(keys, order, app_id="2021000000009999"), id="wrong-app-id"),
        pytest.param(lambda keys, order: {**alipay_notify(keys, order), "sign_type": "RSA"}, id="not-rsa2"),
        pytest.param(lambda keys, order: {**alipay_notify(keys, order), "sign": "!!not base64"}, id="garbage-sign"),
        pytest.param(lambda keys, order: alipay_notify(keys, order, total_amount="1.60"), id="signed-wrong-amount"),
    ],
)
def test_alipay_forged_notifies_are_refused(app, keys, ordered, no_network, forge) -> None:
    before = footprint(ordered)
    response = app.test_client().post("/payment/notify/alipay", data=forge(keys, order_of(ordered)))
    assert (response.status_code, response.text) == (400, "fail")
    assert footprint(ordered) == before and no_network == []


class FakeAlipay:
    """Alipay's server API on loopback, answering as Alipay does (signed by the SDK)."""

    def __init__(self, keys, order_number: str, paid: bool) -> None:
        self.signer = alipay_signer(keys)
        self.order_number, self.paid = order_number, paid
        self.calls: list[str] = []

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        method = request.args.get("method", "")
        self.calls.append(method)
        name = method.replace(".", "_") + "_response"
        if method == "alipay.trade.query" and self.paid:
            body = {
                "code": "10000", "msg": "Success", "trade_no": "2026120122001400000000000009",
                "out_trade_no": self.order_number, "trade_status": "TRADE_SUCCESS", "total_amount": "160.00",
                "send_pay_date": "2026-12-01 09:59:58",
            }  # fmt: skip
        elif method in ("alipay.trade.query", "alipay.trade.close"):
            body = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST"}
        else:
            body = {"code": "10000", "msg": "Success"}
        inner = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        raw = '{"%s":%s,"sign":"%s"}' % (name, inner, self.signer._sign(inner))  # noqa: UP031
        return Response(raw, content_type="application/json;charset=utf-8")(environ, start_response)


def test_alipay_lost_notify_a_signed_query_answer_pays(app, keys, ordered, no_network, serve) -> None:
    gateway = FakeAlipay(keys, order_of(ordered).number, paid=True)
    app.config["PAYMENT_ALIPAY_GATEWAY_URL"] = serve(gateway)
    client = app.test_client()
    login(client, ordered)
    page = client.get(f"/payment/orders/{order_of(ordered).number}/result?channel=alipay").text
    assert "支付成功" in page and footprint(ordered)[0] == "approved"
    assert gateway.calls == ["alipay.trade.query"] and no_network == []


def test_alipay_query_answer_signed_by_another_key_is_not_believed(app, keys, ordered, no_network, serve) -> None:
    gateway = FakeAlipay(keys, order_of(ordered).number, paid=True)
    gateway.signer = alipay_signer(keys, "foreign")
    app.config["PAYMENT_ALIPAY_GATEWAY_URL"] = serve(gateway)
    client = app.test_client()
    login(client, ordered)
    before = footprint(ordered)
    page = client.get(f"/payment/orders/{order_of(ordered).number}/result?channel=alipay").text
    assert "支付处理中" in page and footprint(ordered) == before


# -- WeChat Pay v3 ----------------------------------------------------------------------------------


def wechat_notify(
    keys, order: PaymentOrder, now: float, *, who: str = "wechat", serial: str = PUBKEY_ID, key: str = APIV3, **over
) -> tuple[str, dict[str, str]]:
    resource = {
        "mchid": MCHID, "appid": WX_APPID, "out_trade_no": order.number,
        "transaction_id": "4200000000202612010000000001", "trade_type": "MWEB", "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功", "success_time": "2026-12-01T09:59:58+08:00",
        "amount": {"total": order.amount_fen, "payer_total": order.amount_fen, "currency": "CNY"},
    }  # fmt: skip
    resource.update(over)
    nonce = secrets.token_hex(6)
    cipher = AESGCM(key.encode()).encrypt(nonce.encode(), json.dumps(resource).encode(), b"transaction")
    body = json.dumps(
        {
            "id": secrets.token_hex(8), "create_time": "2026-12-01T10:00:00+08:00", "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
            "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                         "ciphertext": base64.b64encode(cipher).decode(), "associated_data": "transaction",
                         "nonce": nonce},
        }
    )  # fmt: skip
    stamp, sign_nonce = str(int(now)), secrets.token_hex(16)
    signature = rsa_sign(load_private_key(keys[who][0]), f"{stamp}\n{sign_nonce}\n{body}\n")
    headers = {
        "Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": sign_nonce, "Wechatpay-Signature": signature,
        "Wechatpay-Serial": serial, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        "Content-Type": "application/json",
    }  # fmt: skip
    return body, headers


def post_wechat(app, body: str, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return app.test_client().post("/payment/notify/wechat", data=body.encode(), headers=headers)


def test_wechat_genuine_notify_is_accepted_once_and_a_replay_changes_nothing(app, clock, keys, ordered, no_network):
    body, headers = wechat_notify(keys, order_of(ordered), clock.now.timestamp())
    assert post_wechat(app, body, headers).status_code == 200
    assert footprint(ordered)[0] == "approved"
    after = footprint(ordered)
    replay = post_wechat(app, body, headers)
    assert replay.status_code == 200 and footprint(ordered) == after  # de-duplicated by notify id
    assert no_network == []


def _tampered(keys, order, now):  # type: ignore[no-untyped-def]
    body, headers = wechat_notify(keys, order, now)
    return body.replace('"TRANSACTION.SUCCESS"', '"TRANSACTION.SUCCESS "'), headers


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(_tampered, id="tampered-body"),
        pytest.param(lambda keys, order, now: wechat_notify(keys, order, now, who="foreign"), id="foreign-key"),
        pytest.param(lambda keys, order, now: wechat_notify(keys, order, now, mchid="1900009999"), id="wrong-mchid"),
        pytest.param(
            lambda keys, order, now: wechat_notify(keys, order, now, appid="wx0000000000000000"), id="wrong-appid"
        ),
        pytest.param(lambda keys, order, now: wechat_notify(keys, order, now - 301), id="stale-timestamp"),
        pytest.param(lambda keys, order, now: wechat_notify(keys, order, now + 301), id="future-timestamp"),
        pytest.param(
            lambda keys, order, now: wechat_notify(keys, order, now, serial="7A1B2C3D4E5F"), id="unknown-serial"
        ),
        pytest.param(lambda keys, order, now: wechat_notify(keys, order, now, key="c" * 32), id="wrong-apiv3-key"),
        pytest.param(
            lambda keys, order, now: wechat_notify(keys, order, now, amount={"total": 1, "currency": "CNY"}),
            id="signed-wrong-amount",
        ),
    ],
)
def test_wechat_forged_notifies_are_refused(app, clock, keys, ordered, no_network, forge) -> None:
    before = footprint(ordered)
    body, headers = forge(keys, order_of(ordered), clock.now.timestamp())
    response = post_wechat(app, body, headers)
    assert 400 <= response.status_code < 600 and response.json["code"] == "FAIL"
    assert footprint(ordered) == before
    assert no_network == []  # the SDK alone would fetch certificates for the unknown serial


def test_wechat_signtest_probe_is_refused(app, clock, keys, ordered, no_network) -> None:
    body, headers = wechat_notify(keys, order_of(ordered), clock.now.timestamp())
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    before = footprint(ordered)
    assert post_wechat(app, body, headers).status_code == 400
    assert footprint(ordered) == before and no_network == []


@pytest.mark.parametrize("name", ["alipay", "wechat"])
def test_a_real_gateway_without_its_keys_stops_the_app_at_start(name: str, clock) -> None:
    config = type("NoKeys", (TestConfig,), {"PAYMENT_CHANNELS": {name: name}})
    with pytest.raises(ConfigurationError, match="is not set"):
        create_app(config, clock=clock)

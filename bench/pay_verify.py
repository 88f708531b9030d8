"""What checking one gateway notify costs, per gateway, in process (issue 15).

.venv/bin/python -m bench.pay_verify [--n 2000] [--passes 3]

The adapter's ``verify_notify`` only (no database, no HTTP): the built-in sandbox (HMAC-SHA256,
the baseline), Alipay (python-alipay-sdk, RSA2 verify over the sorted parameters) and WeChat
Pay v3 (our header checks, then wechatpayv3's RSA verify and AES-256-GCM decrypt). Keys are
made for the run. Each pass verifies ``--n`` genuine notifies per gateway, interleaved; the
median pass is reported, with each real gateway as a ratio of the sandbox in the same run.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from alipay import AliPay
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from wechatpayv3.utils import load_private_key, rsa_sign

from bench.common import IN_WINDOW
from gzsb.adapters.payments import gateway, signed
from gzsb.app import create_app
from gzsb.config import TestConfig
from gzsb.payments import service  # noqa: F401 - registers the real gateways

APIV3 = "k" * 32


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pay-verify-"))
    keys = {name: pem_pair() for name in ("app", "alipay", "merchant", "wechat")}
    for name, (private, public) in keys.items():
        (folder / f"{name}.key").write_text(private)
        (folder / f"{name}.pub").write_text(public)
    clock = lambda: IN_WINDOW  # noqa: E731 - a fixed clock: every notify is fresh
    config = type(
        "BenchConfig",
        (TestConfig,),
        {
            "PAYMENT_ALIPAY_APP_ID": "2021000000000077",
            "PAYMENT_ALIPAY_PRIVATE_KEY_PATH": str(folder / "app.key"),
            "PAYMENT_ALIPAY_PUBLIC_KEY_PATH": str(folder / "alipay.pub"),
            "PAYMENT_WECHAT_MCHID": "1900000109",
            "PAYMENT_WECHAT_APPID": "wxd678efh567hg6787",
            "PAYMENT_WECHAT_CERT_SERIAL": "5157F09EFDC096DE",
            "PAYMENT_WECHAT_PRIVATE_KEY_PATH": str(folder / "merchant.key"),
            "PAYMENT_WECHAT_PUBLIC_KEY_PATH": str(folder / "wechat.pub"),
            "PAYMENT_WECHAT_PUBLIC_KEY_ID": "PUB_KEY_ID_01",
            "PAYMENT_WECHAT_APIV3_KEY": APIV3,
        },
    )
    app = create_app(config, clock=clock)
    order = {"number": "GZSB20261201ABCDEF0123010", "fen": 16000}

    sandbox_params = signed(
        {
            "notify_id": "n1", "merchant_id": app.config["PAYMENT_MERCHANT_ID"], "out_trade_no": order["number"],
            "trade_no": "SBX1", "total_amount": "160.00", "currency": "CNY", "channel": "alipay",
            "trade_status": "TRADE_SUCCESS", "gmt_payment": "2026-12-01T01:59:58Z",
        },
        app.config["PAYMENT_SIGN_KEY"],
    )  # fmt: skip
    signer = AliPay(appid="2021000000000077", app_private_key_string=keys["alipay"][0],
                    alipay_public_key_string=keys["app"][1])  # fmt: skip
    alipay_data = {
        "notify_id": "a1", "app_id": "2021000000000077", "trade_no": "2026120122001", "out_trade_no": order["number"],
        "trade_status": "TRADE_SUCCESS", "total_amount": "160.00", "gmt_payment": "2026-12-01 09:59:58",
    }  # fmt: skip
    alipay_params = dict(parse_qsl(signer.sign_data(dict(alipay_data))))
    alipay_params["sign_type"] = "RSA2"
    resource = {
        "mchid": "1900000109", "appid": "wxd678efh567hg6787", "out_trade_no": order["number"],
        "transaction_id": "4200000001", "trade_state": "SUCCESS", "success_time": "2026-12-01T09:59:58+08:00",
        "amount": {"total": 16000, "payer_total": 16000, "currency": "CNY"},
    }  # fmt: skip
    nonce = secrets.token_hex(6)
    cipher = AESGCM(APIV3.encode()).encrypt(nonce.encode(), json.dumps(resource).encode(), b"transaction")
    body = json.dumps({"id": "w1", "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
                       "resource": {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(cipher).decode(),
                                    "associated_data": "transaction", "nonce": nonce}})  # fmt: skip
    stamp, sign_nonce = str(int(IN_WINDOW.timestamp())), secrets.token_hex(16)
    headers = {
        "Wechatpay-Timestamp": stamp, "Wechatpay-Nonce": sign_nonce, "Wechatpay-Serial": "PUB_KEY_ID_01",
        "Wechatpay-Signature": rsa_sign(load_private_key(keys["wechat"][0]), f"{stamp}\n{sign_nonce}\n{body}\n"),
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }  # fmt: skip

    with app.app_context():
        cases: dict[str, tuple[Any, tuple[Any, ...]]] = {
            "sandbox (HMAC-SHA256)": (gateway("sandbox", app), (sandbox_params,)),
            "alipay (RSA2, python-alipay-sdk)": (gateway("alipay", app), (alipay_params,)),
            "wechat (RSA + AES-GCM, wechatpayv3)": (gateway("wechat", app), ({}, headers, body)),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.passes):
            for name, (gw, call) in cases.items():
                assert gw.verify_notify(*call).paid
                start = time.perf_counter()
                for _ in range(args.n):
                    gw.verify_notify(*call)
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["sandbox (HMAC-SHA256)"])
    print(f"verify_notify, {args.n} notifies per pass, median of {args.passes} passes\n")
    print("| gateway | median µs/notify | notifies/s | vs sandbox | passes (s) |")
    print("|---|---:|---:|---:|---|")
    for name, passes in times.items():
        median = statistics.median(passes)
        print(
            f"| {name} | {median / args.n * 1e6:.1f} | {args.n / median:,.0f} | {median / base:.1f}× | "
            + ", ".join(f"{p:.3f}" for p in passes)
            + " |"
        )


if __name__ == "__main__":
    main()

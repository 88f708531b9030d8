"""Fixtures of the payment gateway contract tests: throw-away keys, the gateways configured
with them, a student with an open order, a blocked network, loopback gateway servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from tests.adapters.test_payments_contract import APIV3, APP_ID, MCHID, PUBKEY_ID, WX_APPID, pem_pair
from tests.payments.test_service import to_order
from tests.payments.test_views import queue

__all__ = ["queue"]  # the in-process Huey queue fixture, for the refund jobs


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[str, str]]:
    return {name: pem_pair() for name in ("app", "alipay", "foreign", "merchant", "wechat")}


@pytest.fixture
def no_network(monkeypatch) -> list[object]:
    """Any connection to a non-loopback address fails and is recorded."""
    attempts: list[object] = []
    real = socket.socket.connect

    def connect(self, address):  # type: ignore[no-untyped-def]
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost")):
            return real(self, address)
        attempts.append(address)
        raise OSError(f"network blocked in tests: {address}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


@pytest.fixture
def gateways(app, keys, tmp_path) -> dict[str, object]:
    paths = {}
    for name, (private, public) in keys.items():
        (tmp_path / f"{name}.key").write_text(private)
        (tmp_path / f"{name}.pub").write_text(public)
        paths[name] = (str(tmp_path / f"{name}.key"), str(tmp_path / f"{name}.pub"))
    app.config.update(
        PAYMENT_CHANNELS={"alipay": "alipay", "wechat": "wechat"},
        PAYMENT_ALIPAY_APP_ID=APP_ID,
        PAYMENT_ALIPAY_PRIVATE_KEY_PATH=paths["app"][0],
        PAYMENT_ALIPAY_PUBLIC_KEY_PATH=paths["alipay"][1],
        PAYMENT_WECHAT_MCHID=MCHID,
        PAYMENT_WECHAT_APPID=WX_APPID,
        PAYMENT_WECHAT_CERT_SERIAL="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        PAYMENT_WECHAT_PRIVATE_KEY_PATH=paths["merchant"][0],
        PAYMENT_WECHAT_PUBLIC_KEY_PATH=paths["wechat"][1],
        PAYMENT_WECHAT_PUBLIC_KEY_ID=PUBKEY_ID,
        PAYMENT_WECHAT_APIV3_KEY=APIV3,
    )
    return paths


@pytest.fixture
def ordered(app, make_applicant, gateways):
    who = make_applicant()
    to_order(who)
    return who


@pytest.fixture
def serve() -> Iterator[object]:
    servers = []

    def start(wsgi) -> str:  # type: ignore[no-untyped-def]
        server = make_server("127.0.0.1", 0, wsgi)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/gateway.do"

    yield start
    for server in servers:
        server.shutdown()

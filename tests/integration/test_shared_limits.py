"""Rate limits on the real Redis: two app instances (two nodes) share one budget, the
client address comes from X-Forwarded-For only behind the configured number of proxies,
and the limit pages are Chinese (JSON for API clients)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gzsb.app import create_app
from gzsb.config import TestConfig, test_redis_url
from gzsb.extensions import db

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def nodes(tmp_path: Path) -> Callable[..., Flask]:
    """Apps on one SQLite file and the test Redis, under a key prefix of their own."""
    url = test_redis_url()
    if not url:
        pytest.skip("TEST_REDIS_URL is not set: Redis integration test skipped")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"

    def node(**settings: Any) -> Flask:
        base = {"SQLALCHEMY_DATABASE_URI": database, "RATELIMIT_STORAGE_URI": url, "RATELIMIT_KEY_PREFIX": prefix}
        app = create_app(type("Node", (TestConfig,), {**base, **settings}))
        with app.app_context():
            db.create_all()
        return app

    return node


def login(client: FlaskClient, name: str, **headers: str) -> Any:
    page = client.get("/login", headers=headers)
    token = TOKEN.search(page.get_data(as_text=True))
    assert token is not None
    data = {"login": name, "password": "Guess#2027", "csrf_token": token.group(1)}
    return client.post("/login", data=data, headers=headers)


def test_two_nodes_share_one_failure_budget(nodes) -> None:
    first, second = nodes(FAILURES_PER_ACCOUNT="4/15minutes"), nodes(FAILURES_PER_ACCOUNT="4/15minutes")
    # Alternating between the nodes, as a load balancer would.
    answers = [login((first if i % 2 else second).test_client(), "13900000777").status_code for i in range(5)]
    assert answers == [401, 401, 401, 401, 429]
    assert login(first.test_client(), "13900000777").status_code == 429
    assert login(second.test_client(), "13900000778").status_code == 401  # another account is not paused


def test_one_node_alone_would_not_have_paused_it(nodes) -> None:
    # The control for the test above: on one node, two failures stay under a budget of four.
    app = nodes(FAILURES_PER_ACCOUNT="4/15minutes")
    assert [login(app.test_client(), "13900000779").status_code for _ in range(2)] == [401, 401]


def test_forwarded_for_counts_only_behind_the_configured_proxies(nodes) -> None:
    direct = nodes(FAILURES_PER_IP="3/15minutes")  # PROXY_COUNT = 0: the header is the client's word
    forged = [
        login(direct.test_client(), f"1390000100{i}", **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(4)
    ]
    assert forged == [401, 401, 401, 429]  # one client, whatever it claims

    behind = nodes(FAILURES_PER_IP="3/15minutes", PROXY_COUNT=1)
    proxied = [
        login(behind.test_client(), f"1390000200{i}", **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code
        for i in range(4)
    ]
    assert proxied == [401, 401, 401, 401]  # four clients behind one proxy
    # The proxy appends the address it saw: the last entry is the one trusted.
    spoofed = [
        login(behind.test_client(), f"1390000300{i}", **{"X-Forwarded-For": f"10.9.9.{i}, 198.51.100.50"}).status_code
        for i in range(4)
    ]
    assert spoofed == [401, 401, 401, 429]


def test_the_request_ceiling_answers_in_chinese_and_json_for_api_clients(nodes) -> None:
    app = nodes(AUTH_POSTS_PER_IP="2/minute")
    client = app.test_client()
    assert [login(client, f"1390000400{i}").status_code for i in range(2)] == [401, 401]
    page = login(client, "13900004009")
    assert page.status_code == 429
    html = page.get_data(as_text=True)
    assert "操作过于频繁，请稍后再试" in html and "</html>" in html.lower()
    token = TOKEN.search(client.get("/login").get_data(as_text=True))
    assert token is not None
    answer = client.post(
        "/login",
        data={"login": "13900004010", "password": "x", "csrf_token": token.group(1)},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 429
    assert answer.get_json()["message"] == "操作过于频繁，请稍后再试"


def test_log_in_keeps_working_while_the_limit_store_is_down(nodes) -> None:
    app = nodes(RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0")  # nothing listens there
    client = app.test_client()
    assert [login(client, "13900005000").status_code for _ in range(2)] == [401, 401]  # not a 500

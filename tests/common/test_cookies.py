"""gzsb.common.cookies: a session cookie verified once is not verified again, and yet a tampered,
expired or differently keyed cookie is refused, and no request shares another's payload."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, request

from gzsb.common.cookies import VerifiedCookieSessions

COOKIE = "session"


@pytest.fixture
def app() -> Flask:
    made = Flask(__name__)
    made.secret_key = "cookie-test-key"
    made.session_interface = VerifiedCookieSessions()
    return made


def _sign(app: Flask, data: dict[str, Any]) -> str:
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return str(serializer.dumps(data))


def _open(app: Flask, cookie: str) -> Any:
    with app.test_request_context(headers={"Cookie": f"{COOKIE}={cookie}"}):
        return app.session_interface.open_session(app, request)


def test_a_verified_cookie_is_remembered_and_gives_a_fresh_copy(app: Flask) -> None:
    cookie = _sign(app, {"account_id": 7, "epoch": 1})
    first = _open(app, cookie)
    assert dict(first) == {"account_id": 7, "epoch": 1}
    interface: VerifiedCookieSessions = app.session_interface  # type: ignore[assignment]
    assert len(interface._verified) == 1  # remembered
    first["account_id"] = 8  # one request changing its session…
    assert dict(_open(app, cookie)) == {"account_id": 7, "epoch": 1}  # …does not change the next one's


def test_a_tampered_cookie_is_refused_after_the_real_one_was_remembered(app: Flask) -> None:
    cookie = _sign(app, {"account_id": 7})
    assert _open(app, cookie).get("account_id") == 7
    _payload, stamp, signature = cookie.rsplit(".", 2)
    # Another payload under the remembered cookie's timestamp and signature.
    forged = _sign(app, {"account_id": 1}).rsplit(".", 2)[0] + f".{stamp}.{signature}"
    assert dict(_open(app, forged)) == {}


def test_an_expired_cookie_is_refused_even_when_remembered(app: Flask) -> None:
    cookie = _sign(app, {"account_id": 7})
    assert _open(app, cookie).get("account_id") == 7
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=-1)  # every cookie is past its lifetime
    assert dict(_open(app, cookie)) == {}


def test_a_new_secret_key_refuses_cookies_checked_with_the_old_one(app: Flask) -> None:
    cookie = _sign(app, {"account_id": 7})
    assert _open(app, cookie).get("account_id") == 7
    app.secret_key = "another-key"
    assert dict(_open(app, cookie)) == {}


def test_payloads_with_lists_are_not_shared_between_requests(app: Flask) -> None:
    cookie = _sign(app, {"_flashes": [["message", "已保存"]]})
    first = _open(app, cookie)
    first["_flashes"].append(["message", "另一条"])
    assert _open(app, cookie)["_flashes"] == [["message", "已保存"]]

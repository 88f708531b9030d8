"""The limiter's before-request hook runs only when it has something to check: the account
POSTs carry their own limits, and with no default or application-wide limit configured the
hook would be a fixed cost on every request that limits nothing."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from gzsb.app import create_app
from gzsb.config import TestConfig


def _app(tmp_path: Path, **settings: object) -> Flask:
    config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite3'}", **settings})
    return create_app(config)


def _hooked(app: Flask) -> bool:
    limiter = app.extensions["gzsb.limiter"]
    return limiter._check_request_limit in app.before_request_funcs[None]


def test_no_hook_without_app_wide_limits(tmp_path: Path) -> None:
    assert not _hooked(_app(tmp_path))


def test_an_application_limit_keeps_the_hook_and_is_enforced(tmp_path: Path) -> None:
    app = _app(tmp_path, RATELIMIT_APPLICATION="2/minute")
    assert _hooked(app)
    client = app.test_client()
    codes = [client.get("/healthz").status_code for _ in range(3)]
    assert codes[:2] == [200, 200] and codes[2] == 429

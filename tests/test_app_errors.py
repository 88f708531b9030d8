"""Every error is a Chinese page in the product's layout (JSON under /api); body limits;
security headers; a database that is down fails fast with the 503 page."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from gzsb.app import create_app, engine_options, json_depth
from gzsb.config import TestConfig
from tests.support import Applicant, csrf_token, log_in_student

ENGLISH = ("Not Found", "Method Not Allowed", "Internal Server Error", "Bad Request", "Request Entity Too Large")


def _chinese_page(response, status: int, words: str) -> str:
    page = response.get_data(as_text=True)
    assert response.status_code == status, page[:300]
    assert response.mimetype == "text/html"
    assert "天津市高职升本网上报名" in page and "出错了" in page  # the product's layout
    assert words in page
    assert not any(english in page for english in ENGLISH), page
    return page


@pytest.fixture
def quiet_client(app: Flask):
    # Unexpected exceptions answered as in production, not re-raised into the test.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app.test_client()


def test_404_and_405_are_chinese_pages(quiet_client) -> None:
    _chinese_page(quiet_client.get("/no/such/page"), 404, "页面不存在")
    response = quiet_client.delete("/login")
    _chinese_page(response, 405, "不支持该请求方式")
    assert "POST" in response.headers["Allow"]


def test_api_errors_are_json(quiet_client) -> None:
    response = quiet_client.get("/api/no/such")
    assert response.status_code == 404 and response.is_json
    assert response.get_json()["message"] == "页面不存在"


def test_csrf_failure_is_a_chinese_page(quiet_client) -> None:
    response = quiet_client.post("/login", data={"login": "x", "password": "y"})
    _chinese_page(response, 400, "页面已过期")


def test_an_unhandled_exception_is_a_chinese_500(app: Flask, quiet_client) -> None:
    @app.get("/boom-for-test")
    def boom() -> str:
        raise KeyError("bug")

    _chinese_page(quiet_client.get("/boom-for-test"), 500, "系统出错了")


def test_a_large_form_field_is_refused_before_parsing(quiet_client) -> None:
    token = csrf_token(quiet_client, "/login")
    response = quiet_client.post("/login", data={"login": "x" * (2 * 1024 * 1024), "csrf_token": token})
    _chinese_page(response, 413, "提交的内容过大")


def test_many_form_parts_are_refused(quiet_client) -> None:
    fields = {f"f{i}": "1" for i in range(1000)}
    response = quiet_client.post("/login", data=fields, content_type="multipart/form-data")
    _chinese_page(response, 413, "提交的内容过大")


def test_json_depth_counts_brackets_outside_strings() -> None:
    assert json_depth('{"a": [1, {"b": "[[[[{{{"}]}') == 3
    assert json_depth("1") == 0


@pytest.fixture
def student_client(app: Flask, make_applicant: Callable[..., Applicant]):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    log_in_student(client, make_applicant())
    return client


def test_deep_json_is_refused_not_a_500(student_client) -> None:
    token = {"X-CSRFToken": csrf_token(student_client, "/application")}
    deep = "[" * 100_000 + "]" * 100_000
    response = student_client.post(
        "/api/application/events/accept_pledge", data=deep, content_type="application/json", headers=token
    )
    assert response.status_code in (413, 422), response.get_data(as_text=True)[:200]
    assert response.is_json and "message" in response.get_json()
    nested: dict = {}
    for _ in range(20):  # 20 levels: fine for json, beyond JSON_MAX_DEPTH
        nested = {"a": nested}
    answer = student_client.post(
        "/api/application/events/accept_pledge", data=json.dumps(nested), content_type="application/json", headers=token
    )
    assert answer.status_code == 422 and "层次过深" in str(answer.get_json())


def test_dotted_form_keys_do_not_crash(student_client) -> None:
    token = csrf_token(student_client, "/application")
    for key in (".".join(["a"] * 5000), "agree.x", "9" * 5000 + ".a"):
        response = student_client.post(
            "/application/events/accept_pledge", data={key: "1", "agree": "on", "csrf_token": token}
        )
        assert response.status_code < 500, key[:20]


def test_headers_on_a_logged_in_page(student_client) -> None:
    response = student_client.get("/application")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    csp = response.headers["Content-Security-Policy"]
    assert (
        "script-src 'self'" in csp
        and "frame-ancestors 'none'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )


def test_templates_have_no_inline_scripts_or_handlers() -> None:
    templates = Path(__file__).resolve().parent.parent / "gzsb" / "templates"
    offenders = []
    for path in templates.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or re.search(r"\son[a-z]+\s*=", text):
            offenders.append(path.name)
        if "javascript:" in text:
            offenders.append(path.name)
    assert not offenders


def test_database_down_fails_fast_with_a_chinese_503(tmp_path: Path) -> None:
    config = type(
        "DownConfig",
        (TestConfig,),
        {
            # Nothing listens on port 1: connection refused, as fast as a dead server can be.
            "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://postgres@127.0.0.1:1/none",
            "PROPAGATE_EXCEPTIONS": False,
        },
    )
    app = create_app(config)
    client = app.test_client()
    started = time.monotonic()
    with client.session_transaction() as session:
        session["account_id"], session["epoch"] = 1, 0  # the layout asks the database who this is
    response = client.get("/application")
    page = _chinese_page(response, 503, "系统暂时无法访问")
    assert time.monotonic() - started < 10
    assert "127.0.0.1:1" not in page  # no internals on the page
    api = client.get("/api/application")
    assert api.status_code == 503 and api.get_json()["error"] == "database_unavailable"


def test_postgres_gets_connect_and_statement_timeouts() -> None:
    settings = {name: getattr(TestConfig, name) for name in dir(TestConfig) if name.isupper()}
    settings.update(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://x@h/db", SQLALCHEMY_ENGINE_OPTIONS={})
    options = engine_options(settings)
    assert options["connect_args"]["connect_timeout"] == TestConfig.DB_CONNECT_TIMEOUT
    assert "statement_timeout" in options["connect_args"]["options"]


def test_the_timeout_keeps_the_urls_own_libpq_options() -> None:
    # connect_args replace the URL's ``options``: a search_path given there must survive.
    settings = {name: getattr(TestConfig, name) for name in dir(TestConfig) if name.isupper()}
    url = "postgresql+psycopg://x@h/db?options=-csearch_path%3Dscratch"
    settings.update(SQLALCHEMY_DATABASE_URI=url, SQLALCHEMY_ENGINE_OPTIONS={})
    options = engine_options(settings)["connect_args"]["options"]
    assert "-csearch_path=scratch" in options and "statement_timeout" in options

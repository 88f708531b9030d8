"""Browser fixtures: the real app served on a loopback port, Debian's Chromium driven by
Playwright, one page per viewport with a screenshot helper, and the SMS outbox read the way
a developer reads it (the /dev/sms page).

- ``live_server``: the app on a fresh SQLite file, the flow published, confirmation points,
  the demo catalogue and 学籍/学历 registry imported (data/), a fixed clock inside the
  registration window. Module-scoped: every test in a module shares it, so tests use
  students of their own (``demo_student(index)`` with distinct indexes).
- ``browser``: one Chromium for the session (never downloaded: /usr/bin/chromium).
- ``screen``: a fresh browser context and page for each viewport (``desktop``, ``phone``)
  and ``screen.shot(name)`` saving ``test-artifacts/e2e/<viewport>/NN-name.png``.
- tests/e2e/support.py: ``sms_code(page, mobile)``, the newest verification code sent to
  a mobile; ``log_in(screen, login, password)``, through the 登录 page to the 流程页面.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from gzsb.demo import CONFIRMATION_POINTS, import_reference_data
from gzsb.extensions import db
from gzsb.models import ConfirmationPoint
from gzsb.runtime import vault
from tests.conftest import Clock, _make_app
from tests.e2e.support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, VIEWPORTS, LiveServer, Screen


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    clock = Clock()
    path = tmp_path_factory.mktemp("live") / "e2e.sqlite3"
    app = _make_app(f"sqlite:///{path}", clock, catalogue=False)
    app.config["SMS_DEV_PAGE"] = True  # codes are read from /dev/sms, as in `make run`
    with app.app_context():
        known = set(db.session.scalars(db.select(ConfirmationPoint.code)))
        for code, name, address in CONFIRMATION_POINTS:
            if code not in known:
                db.session.add(ConfirmationPoint(code=code, name=name, address=address))
        db.session.commit()
        import_reference_data(db.session, vault())
        db.session.remove()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app, clock)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` (or apt-get install chromium) installs it")
    from playwright.sync_api import sync_playwright

    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # screenshots of this run only
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(params=sorted(VIEWPORTS))
def screen(request: pytest.FixtureRequest, browser: Any, live_server: LiveServer) -> Iterator[Screen]:
    viewport = request.param
    context = browser.new_context(base_url=live_server.url, locale="zh-CN", **VIEWPORTS[viewport])
    context.set_default_timeout(TIMEOUT_MS)
    # Pages must work offline (rule 10): anything not served by the app is refused and named.
    outside: list[str] = []

    def refuse(route: Any) -> None:
        outside.append(route.request.url)
        route.abort()

    context.route(re.compile(rf"^(?!{re.escape(live_server.url)}/)(https?|wss?)://"), refuse)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield Screen(viewport, page, ARTIFACTS / viewport)
    finally:
        context.close()
    assert not errors, f"JavaScript errors on {viewport}: {errors}"
    assert not outside, f"pages asked for something outside the app: {outside}"

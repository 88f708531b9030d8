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
- ``sms_code(page, mobile)``: the newest verification code sent to a mobile.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from gzsb.config import ROOT
from gzsb.demo import CONFIRMATION_POINTS, import_reference_data
from gzsb.extensions import db
from gzsb.models import ConfirmationPoint
from gzsb.runtime import vault
from gzsb.security import mask_mobile
from tests.conftest import Clock, _make_app

CHROMIUM = Path("/usr/bin/chromium")
# Root in a container: no sandbox; nothing may reach the internet (rule 10).
CHROMIUM_ARGS = [
    "--lang=zh-CN",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
TIMEOUT_MS = 10_000
PHONE_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
        "user_agent": PHONE_AGENT,
    },
}
_CODE = re.compile(r"验证码是(\d{6})")


@dataclass
class LiveServer:
    url: str
    app: Flask
    clock: Clock


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


@dataclass
class Screen:
    """One viewport's page; ``shot`` numbers the screenshots in the order they are taken
    (continuing after any taken earlier in the session, so journeys read in order)."""

    viewport: str
    page: Any
    folder: Path
    taken: list[Path] = field(default_factory=list)

    @property
    def is_phone(self) -> bool:
        return self.viewport == "phone"

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        number = len(list(self.folder.glob("*.png"))) + 1
        path = self.folder / f"{number:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        self.taken.append(path)
        return path


@pytest.fixture(params=sorted(VIEWPORTS))
def screen(request: pytest.FixtureRequest, browser: Any, live_server: LiveServer) -> Iterator[Screen]:
    viewport = request.param
    context = browser.new_context(base_url=live_server.url, locale="zh-CN", **VIEWPORTS[viewport])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield Screen(viewport, page, ARTIFACTS / viewport)
    finally:
        context.close()
    assert not errors, f"JavaScript errors on {viewport}: {errors}"


def sms_code(page: Any, mobile: str, *, shot: Screen | None = None) -> str:
    """The newest code sent to ``mobile``, read from the /dev/sms page in a second tab of the
    same browser (the outbox shows masked numbers; tests give each student its own)."""
    tab = page.context.new_page()
    try:
        tab.goto("/dev/sms")
        rows = tab.locator("table.messages tbody tr", has_text=mask_mobile(mobile))
        body = rows.first.locator("td.sms-body").inner_text()
        if shot is not None:
            shot.page, original = tab, shot.page
            try:
                shot.shot("dev-sms")
            finally:
                shot.page = original
    finally:
        tab.close()
    found = _CODE.search(body)
    assert found, f"no verification code in the newest SMS to {mask_mobile(mobile)}: {body!r}"
    return found.group(1)

"""Helpers of the browser tests (fixtures are in conftest.py): Chromium's settings, the
viewports, the live server's handle, one viewport's page with its screenshot helper, reading
SMS codes from /dev/sms, and logging in through the 登录 page."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from gzsb.common.security import mask_mobile
from gzsb.config import ROOT
from tests.conftest import Clock

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


@contextmanager
def serving(app: Flask, clock: Clock, name: str) -> Iterator[LiveServer]:
    """``app`` on a free loopback port in a thread, for the browser; shut down on leaving."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app, clock)
    finally:
        server.shutdown()
        thread.join(timeout=10)


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

    def press(self, target: Any) -> None:
        """A tap on the phone (touch events, as a thumb would), a click on the desktop."""
        if self.is_phone:
            target.tap()
        else:
            target.click()

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        number = len(list(self.folder.glob("*.png"))) + 1
        path = self.folder / f"{number:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        self.taken.append(path)
        return path


def assert_fits(screen: Screen) -> None:
    """Nothing wider than the screen. Measured against the layout viewport (clientWidth): on
    a mobile viewport, content that overflows widens ``innerWidth`` too (the page zooms out)."""
    overflow = screen.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{screen.page.url} is {overflow}px wider than the {screen.viewport} screen"


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


def log_in(screen: Screen, login: str, password: str, *, landing: str = "**/process") -> None:
    """Through the 登录 page with an ID number or mobile; ends on the 流程页面 (a student)
    or wherever ``landing`` says (staff land on their 待办总览, ``**/staff/``)."""
    page = screen.page
    page.goto("/login")
    page.fill("#f-login", login)
    page.fill("#f-password", password)
    screen.press(page.get_by_role("button", name="登录报名"))
    page.wait_for_url(landing)


@contextmanager
def open_screen(browser: Any, base_url: str, viewport: str) -> Iterator[Screen]:
    """A fresh browser context (its own cookies: one person) and page for ``viewport``.
    Pages must work offline (rule 10): anything not served by the app is refused, and on
    leaving, JavaScript errors and requests to the outside fail the test."""
    context = browser.new_context(base_url=base_url, locale="zh-CN", **VIEWPORTS[viewport])
    context.set_default_timeout(TIMEOUT_MS)
    outside: list[str] = []

    def refuse(route: Any) -> None:
        outside.append(route.request.url)
        route.abort()

    context.route(re.compile(rf"^(?!{re.escape(base_url)}/)(https?|wss?)://"), refuse)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield Screen(viewport, page, ARTIFACTS / viewport)
    finally:
        context.close()
    assert not errors, f"JavaScript errors on {viewport}: {errors}"
    assert not outside, f"pages asked for something outside the app: {outside}"


@dataclass
class WorkerServer(LiveServer):
    """The live server with its background work done by a real Huey consumer (another
    process), the way `make run` runs them; ``logs()`` is the consumer's output."""

    folder: Path = ROOT
    consumer: Any = None

    def logs(self, tail: int = 6000) -> str:
        path = self.folder / "consumer.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else "(no consumer log)"

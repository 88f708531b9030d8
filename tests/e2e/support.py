"""Helpers of the browser tests (fixtures are in conftest.py): Chromium's settings, the
viewports, the live server's handle, one viewport's page with its screenshot helper, reading
SMS codes from /dev/sms, and logging in through the 登录 page."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask

from gzsb.config import ROOT
from gzsb.security import mask_mobile
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


def log_in(screen: Screen, login: str, password: str) -> None:
    """Through the 登录 page with an ID number or mobile; ends on the 流程页面."""
    page = screen.page
    page.goto("/login")
    page.fill("#f-login", login)
    page.fill("#f-password", password)
    screen.press(page.get_by_role("button", name="登录报名"))
    page.wait_for_url("**/process")

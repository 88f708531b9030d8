"""The waiting room's page in a real browser, phone and desktop: readable, no sideways
scrolling, and it lets the visitor in by itself (its own reload) once the queue moves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gzsb.app import create_app
from gzsb.config import TestConfig, test_redis_url
from gzsb.extensions import db
from gzsb.store import publish
from gzsb.waitroom import EXTENSION
from gzsb.workflow.loader import load_flow_file
from tests.conftest import FLOW_FILE, Clock
from tests.e2e.support import VIEWPORTS, LiveServer, open_screen, serving


@pytest.fixture(scope="module")
def room_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    url = test_redis_url()
    if not url:
        pytest.skip("TEST_REDIS_URL is not set: the waiting room page needs a real Redis")
    prefix = f"test:wr:e2e:{uuid.uuid4().hex}:"
    path: Path = tmp_path_factory.mktemp("room") / "room.sqlite3"
    values = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "WAITROOM_REDIS_URL": url}
    values |= {"WAITROOM_PREFIX": prefix, "WAITROOM_SETTINGS_TTL": 0.0}
    clock = Clock()
    app = create_app(type("RoomConfig", (TestConfig,), values), clock=clock)
    with app.app_context():
        db.create_all()
        publish(db.session, load_flow_file(FLOW_FILE))
        db.session.remove()
    try:
        with serving(app, clock, "room-server") as server:
            yield server
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(f"{prefix}*"))
        client.delete(*keys) if keys else None


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_the_waiting_page_fits_the_screen_and_lets_the_visitor_in(
    browser, room_server: LiveServer, viewport: str
) -> None:  # type: ignore[no-untyped-def]
    room = room_server.app.extensions[EXTENSION].room
    room.reset()
    # One admission per 10 s on a clock that stands still: the page estimates "不到 1 分钟" and
    # reloads every 5–10 s, but nobody is admitted until the test moves the clock.
    room.store(enabled=True, rate=0.1)
    room.visit("someone-else-in-front01", room_server.clock().timestamp())  # takes the one free place
    with open_screen(browser, room_server.url, viewport) as screen:
        page = screen.page
        page.goto("/")
        assert page.locator("h1").inner_text() == "当前访问人数较多，正在排队"
        assert page.locator("#ahead").inner_text() == "0"
        assert "不到 1 分钟" in page.locator("main").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        screen.shot("waitroom")
        # The queue moves: the page's own reload (every 5–10 s) brings the real home page.
        room_server.clock.advance(seconds=30)
        page.locator("#window-title").wait_for(timeout=20_000)
        screen.shot("waitroom-admitted")

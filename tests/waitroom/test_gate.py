"""The gate in front of real apps on one Redis: pages, admissions across nodes, bypass paths."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gzsb.waitroom import EXTENSION
from gzsb.waitroom.gate import ADMIT_COOKIE, TICKET_COOKIE
from tests.conftest import Clock

WAITING = "当前访问人数较多，正在排队"


def room_of(app: Flask):  # type: ignore[no-untyped-def]
    return app.extensions[EXTENSION].room


def cookie(client: FlaskClient, name: str) -> str | None:
    found = client.get_cookie(name)
    return found.value if found else None


@pytest.fixture
def busy(make_app: Callable[..., Flask]) -> tuple[Flask, Flask, Clock]:
    """Two nodes, the room on, one admission per ~3 hours: after the first visitor, all wait."""
    clock = Clock()
    node_a, node_b = make_app(clock, "a"), make_app(clock, "b")
    room_of(node_a).store(enabled=True, rate=0.0001)
    return node_a, node_b, clock


def test_first_visitor_passes_then_the_crowd_waits_with_a_place(busy: tuple[Flask, Flask, Clock]) -> None:
    node_a, node_b, _ = busy
    first = node_a.test_client()
    assert WAITING not in first.get("/").get_data(as_text=True)
    assert cookie(first, ADMIT_COOKIE)

    crowd = [node_a.test_client() if i % 2 else node_b.test_client() for i in range(3)]
    pages = [c.get("/") for c in crowd]
    for ahead, page in enumerate(pages):
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and WAITING in text
        assert f'id="ahead">{ahead}<' in text  # places shared by both nodes
        assert 'http-equiv="refresh"' in text and "预计等待时间" in text
        assert page.headers["Cache-Control"] == "no-store"
    # Coming back keeps the place (the ticket cookie), on either node.
    again = node_b.test_client()
    again.set_cookie(TICKET_COOKIE, cookie(crowd[2], TICKET_COOKIE) or "")
    assert 'id="ahead">2<' in again.get("/").get_data(as_text=True)
    status = crowd[1].get("/waitroom/status").get_json()
    assert status["status"] == "wait" and status["ahead"] == 1
    api = crowd[0].get("/api/application")
    assert api.status_code == 503 and api.get_json()["error"] == "waiting_room" and "Retry-After" in api.headers


def test_an_admission_made_on_one_node_passes_on_the_other(busy: tuple[Flask, Flask, Clock]) -> None:
    node_a, node_b, _ = busy
    first = node_a.test_client()
    first.get("/")
    admission = cookie(first, ADMIT_COOKIE)
    assert admission
    other = node_b.test_client()
    other.set_cookie(ADMIT_COOKIE, admission)
    before = room_of(node_b).stats()
    page = other.get("/login")
    assert page.status_code == 200 and WAITING not in page.get_data(as_text=True)
    assert room_of(node_b).stats() == before  # no place taken: the signature was enough
    assert other.get("/waitroom/status").get_json()["status"] == "admit"
    assert room_of(node_b).stats() == before


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"),  # signature
        lambda v: v.replace(v.split(".")[1], str(int(v.split(".")[1]) + 86400)),  # longer life
        lambda v: "A" * 22 + v[22:],  # someone else's ticket
    ],
)
def test_a_tampered_admission_is_refused(busy: tuple[Flask, Flask, Clock], tamper: Callable[[str], str]) -> None:
    node_a, node_b, _ = busy
    first = node_a.test_client()
    first.get("/")
    forged = node_b.test_client()
    forged.set_cookie(ADMIT_COOKIE, tamper(cookie(first, ADMIT_COOKIE) or ""))
    assert WAITING in forged.get("/login").get_data(as_text=True)


def test_an_expired_admission_is_refused_and_an_active_one_renewed(busy: tuple[Flask, Flask, Clock]) -> None:
    node_a, _, clock = busy
    first = node_a.test_client()
    first.get("/")
    issued = cookie(first, ADMIT_COOKIE)
    clock.advance(minutes=20)  # past half of the 30-minute life: renewed on this request
    assert WAITING not in first.get("/login").get_data(as_text=True)
    renewed = cookie(first, ADMIT_COOKIE)
    assert renewed and renewed != issued
    late = node_a.test_client()
    late.set_cookie(ADMIT_COOKIE, issued or "")
    clock.advance(minutes=11)
    assert WAITING in late.get("/login").get_data(as_text=True)  # the old one has expired
    assert WAITING not in first.get("/login").get_data(as_text=True)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/static/app.css"),
        ("get", "/healthz"),
        ("get", "/staff/"),
        ("get", "/admin/"),
        ("get", "/audit/"),
        ("get", "/login?next=/staff/"),
        ("get", "/login?next=%2Fadmin%2Fflows"),
        ("post", "/payment/notify/sandbox"),
        ("get", "/waitroom/status"),
    ],
)
def test_bypass_paths_never_queue(busy: tuple[Flask, Flask, Clock], method: str, path: str) -> None:
    node_a, _, _ = busy
    node_a.test_client().get("/")  # the one admission of the next hours is gone
    answer = getattr(node_a.test_client(), method)(path)
    assert WAITING not in answer.get_data(as_text=True)
    assert answer.status_code != 503
    student_login = node_a.test_client().get("/login?next=/process")
    assert WAITING in student_login.get_data(as_text=True)


def test_before_the_opening_visitors_wait_for_the_shuffle_then_get_places(make_app: Callable[..., Flask]) -> None:
    clock = Clock(datetime(2026, 11, 16, 0, 50, tzinfo=UTC))  # 08:50 Beijing time
    node = make_app(clock)
    opens = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)
    room_of(node).store(enabled=True, rate=0.001, opens=opens.timestamp())
    early = [node.test_client() for _ in range(5)]
    for count, client in enumerate(early, start=1):
        text = client.get("/").get_data(as_text=True)
        assert "2026年11月16日 09:00" in text and "随机排序" in text and f"当前已有 {count} 人在等候" in text
    assert early[0].get("/waitroom/status").get_json()["opens_in_seconds"] == 600
    clock.now = opens + timedelta(seconds=1)
    outcomes = sorted(WAITING in c.get("/").get_data(as_text=True) for c in early)
    assert outcomes == [False, True, True, True, True]  # one admitted (the burst), four with places
    latecomer = node.test_client().get("/").get_data(as_text=True)
    assert 'id="ahead">4<' in latecomer  # behind everyone who came before the opening


def test_switched_off_nobody_queues_and_without_redis_there_is_no_gate(
    make_app: Callable[..., Flask], app: Flask
) -> None:
    node = make_app(Clock())
    room_of(node).store(enabled=False, rate=0.001)
    for _ in range(3):
        assert WAITING not in node.test_client().get("/").get_data(as_text=True)
    assert EXTENSION not in app.extensions  # the test config has no Redis URL


def test_with_redis_down_requests_pass(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    node = make_app(Clock(), WAITROOM_REDIS_URL="redis://127.0.0.1:1/0", WAITROOM_ENABLED=True)
    page = node.test_client().get("/login")
    assert page.status_code == 200 and WAITING not in page.get_data(as_text=True)
    assert "letting the request through" in caplog.text

"""/healthz and /readyz: JSON, 503 while the database, Redis or the tick is not there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gzsb.app import create_app
from gzsb.config import TestConfig, test_redis_url
from gzsb.worker.periodic import beat


@pytest.fixture
def beats_in(app, tmp_path: Path):
    app.config["HUEY_SQLITE_PATH"] = str(tmp_path / "huey.sqlite3")  # the heartbeat file goes next to it
    return app


def test_healthz_answers_while_the_process_is_up(app) -> None:
    answer = app.test_client().get("/healthz")
    assert answer.status_code == 200 and answer.get_json() == {"status": "ok"}


def test_readyz_waits_for_a_recent_tick(beats_in) -> None:
    client = beats_in.test_client()
    never = client.get("/readyz")
    assert never.status_code == 503
    body = never.get_json()
    assert body["status"] == "not ready" and body["checks"]["tick"] == {"ok": False, "age_seconds": None}
    assert body["checks"]["database"] == {"ok": True}
    beat(beats_in.config, datetime.now(UTC) - timedelta(minutes=10))  # the periodic consumer died long ago
    assert client.get("/readyz").status_code == 503
    beat(beats_in.config, datetime.now(UTC))
    fresh = client.get("/readyz")
    assert fresh.status_code == 200 and fresh.get_json()["status"] == "ready"


def test_readyz_without_the_tick_check(app) -> None:
    app.config["READY_TICK_MAX_AGE_SECONDS"] = 0
    assert app.test_client().get("/readyz").status_code == 200


def test_readyz_reports_a_database_that_does_not_answer(tmp_path: Path) -> None:
    down = type(
        "Down",
        (TestConfig,),
        {"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://postgres@127.0.0.1:9/none", "DB_CONNECT_TIMEOUT": 1,
         "READY_TICK_MAX_AGE_SECONDS": 0},
    )  # fmt: skip
    answer = create_app(down).test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.get_json()["checks"]["database"] == {"ok": False, "error": "OperationalError"}


def test_readyz_on_postgresql_and_redis(pg_app) -> None:
    url = test_redis_url()
    if not url:
        pytest.skip("TEST_REDIS_URL is not set")
    pg_app.config.update(REDIS_URL=url, HUEY_NAME="readyz-test")
    beat(pg_app.config, datetime.now(UTC))
    ready = pg_app.test_client().get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["redis"] == {"ok": True}
    pg_app.config["REDIS_URL"] = "redis://127.0.0.1:9/0"  # nothing listens there
    down = pg_app.test_client().get("/readyz").get_json()
    assert down["status"] == "not ready" and down["checks"]["redis"]["ok"] is False

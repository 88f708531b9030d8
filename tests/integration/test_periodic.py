"""Periodic tasks run once per period however many consumers enqueue them (real Redis, real
huey_consumer processes), and the app's own log lines appear in the consumer's output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from gzsb.app import create_app
from gzsb.config import ROOT, TestConfig, test_redis_url
from gzsb.extensions import db
from gzsb.worker import tasks as jobs
from gzsb.worker.periodic import claim_period, last_beat

SECRETS = {k: getattr(TestConfig, k) for k in ("SECRET_KEY", "DATA_KEY", "INDEX_KEY", "HISTORY_KEY")}
pytestmark = pytest.mark.slow


@pytest.fixture
def redis_url() -> str:
    url = test_redis_url()
    if not url:
        pytest.skip("TEST_REDIS_URL is not set: Redis integration test skipped")
    return url


def test_of_two_claims_in_one_period_only_the_first_wins(redis_url) -> None:
    config = {"REDIS_URL": redis_url, "HUEY_NAME": f"t-{uuid.uuid4().hex[:8]}"}
    start = datetime(2027, 1, 5, 1, 0, tzinfo=UTC)
    assert claim_period(config, "tick", start + timedelta(seconds=1), 60)
    assert not claim_period(config, "tick", start + timedelta(seconds=30), 60)  # another consumer, same minute
    assert claim_period(config, "form_sweep", start + timedelta(seconds=30), 60)  # another task has its own
    assert claim_period(config, "tick", start + timedelta(seconds=61), 60)  # the next minute
    ttl = redis.Redis.from_url(redis_url).ttl(f"gzsb:{config['HUEY_NAME']}:period:tick:{int(start.timestamp())}")
    assert 0 < ttl <= 120  # the claims clean themselves up


def _consumer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "huey.bin.huey_consumer", "gzsb.worker.tasks.huey", "-w", "1", "-k", "process",
         "-n", "-d", "0.1", "-m", "0.5"],
        env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def _wait(condition, seconds: float, logs: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail("timed out; consumer output:\n" + "\n".join(p.read_text()[-3000:] for p in logs.glob("*.log")))


def test_the_tick_of_a_second_consumer_in_the_same_minute_is_cancelled(tmp_path: Path, redis_url) -> None:
    if datetime.now(UTC).second >= 35:  # both runs must fall in one minute
        time.sleep(61 - datetime.now(UTC).second)
    name = f"gzsb-test-{uuid.uuid4().hex[:8]}"
    database = f"sqlite:///{tmp_path / 'gzsb.sqlite3'}"
    settings = {"SQLALCHEMY_DATABASE_URI": database, "REDIS_URL": redis_url, "HUEY_NAME": name, "HUEY_IMMEDIATE": False}
    config = type("PeriodicConfig", (TestConfig,), settings)
    app = create_app(config)
    with app.app_context():
        db.create_all()
    env = {
        **os.environ,
        **SECRETS,
        "GZSB_ENV": "development",
        "PYTHONPATH": str(ROOT),
        "GZSB_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "HUEY_NAME": name,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    original = jobs.huey.storage
    jobs.huey.storage = jobs.make_huey(config).storage
    consumers: list[subprocess.Popen[bytes]] = []
    try:
        consumers.append(_consumer(env, tmp_path / "first.log"))
        jobs.tick()  # the first consumer's scheduler enqueues the minute's tick
        _wait(lambda: last_beat(app.config) is not None, 60, tmp_path)
        os.killpg(consumers[0].pid, signal.SIGTERM)
        consumers[0].wait(timeout=20)

        consumers.append(_consumer(env, tmp_path / "second.log"))
        jobs.tick()  # the second consumer's scheduler enqueues the same minute's tick
        second = tmp_path / "second.log"
        _wait(lambda: "belongs to another consumer" in second.read_text(), 60, tmp_path)
    finally:
        for process in consumers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        jobs.huey.storage.flush_all()
        jobs.huey.storage = original
    first_lines = (tmp_path / "first.log").read_text()
    assert "belongs to another consumer" not in first_lines  # the first one ran it
    # Our own logger's line is in the consumer's output, as JSON with the task's id.
    ours = [json.loads(line) for line in second.read_text().splitlines() if line.startswith("{")]
    cancelled = [entry for entry in ours if "belongs to another consumer" in entry["message"]]
    assert len(cancelled) == 1 and cancelled[0]["logger"] == "gzsb.worker.tasks"
    assert cancelled[0]["request_id"].startswith("task-")

"""A real gunicorn (two workers): the app's own log lines are on its stderr as JSON with the
request id, the id is echoed, and /metrics adds up the samples of both workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gzsb.app import create_app
from gzsb.config import ROOT, TestConfig
from gzsb.extensions import db

SECRETS = {k: getattr(TestConfig, k) for k in ("SECRET_KEY", "DATA_KEY", "INDEX_KEY", "HISTORY_KEY")}
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_gunicorn_carries_the_apps_json_lines_and_adds_up_metrics(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'gzsb.sqlite3'}"
    with create_app(type("Setup", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": database})).app_context():
        db.create_all()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    env = {
        **os.environ,
        **SECRETS,
        "GZSB_ENV": "development",
        "PYTHONPATH": str(ROOT),
        "GZSB_INSTANCE": str(tmp_path / "instance"),
        "DATABASE_URL": database,
        "LOG_FORMAT": "json",
        "READY_TICK_MAX_AGE_SECONDS": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    stderr = (tmp_path / "gunicorn.err").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "-c", "python:gzsb.ops.gunicorn_conf",
         "gzsb.app:create_app()"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, (tmp_path / "gunicorn.err").read_text()
            time.sleep(0.3)
        status, headers, _ = get(f"{base}/no-such-page", **{"X-Request-ID": "probe-4711"})
        assert status == 404 and headers["X-Request-ID"] == "probe-4711"
        assert get(f"{base}/healthz")[1]["X-Request-ID"]  # a fresh id when none was sent
        for _ in range(20):
            get(f"{base}/readyz")
        _, _, text = get(f"{base}/metrics")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    lines = [json.loads(line) for line in (tmp_path / "gunicorn.err").read_text().splitlines() if line.startswith("{")]
    # The error handler's INFO line (module logger gzsb.app) was lost before: it is there, with the id.
    ours = [e for e in lines if e["logger"] == "gzsb.app" and e["request_id"] == "probe-4711"]
    assert ours and "/no-such-page" in ours[0]["message"] and ours[0]["level"] == "INFO"
    access = [e for e in lines if e["logger"] == "gzsb.access" and e["request_id"] == "probe-4711"]
    assert access and access[0]["status"] == 404 and access[0]["duration_ms"] >= 0
    # Twenty /readyz answers, whichever of the two workers gave them.
    counts = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gzsb_request_seconds_count{") and 'endpoint="ops_health.readyz"' in line
    ]
    assert sum(counts) == 20

"""The identity step through a real Huey consumer (another process): SQLite queue always,
Redis when TEST_REDIS_URL is set; and a consumer killed in the middle of a face job.

The test process plays the web server (Flask test client, files on disk, a SQLite
database file); the consumer is started with the same settings through the environment,
exactly as `make run` starts it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import select

from gzsb.app import create_app
from gzsb.bootstrap import engine
from gzsb.cli.demo import CATALOG_CSV, demo_student
from gzsb.config import ROOT, TestConfig, test_redis_url
from gzsb.enrollment.catalog import import_catalog
from gzsb.extensions import db
from gzsb.identity.attempts import take_attempt
from gzsb.models import Application, ConfirmationPoint, FaceAttemptDay, HistoryEvent
from gzsb.store import publish
from gzsb.worker import tasks as jobs
from gzsb.worker.drain import requeue_stale_jobs
from gzsb.workflow.loader import load_flow_file
from tests.support import CONSENT, new_applicant, to_confirming

FACES = ROOT / "tests" / "fixtures" / "faces"
FLOW_FILE = ROOT / "flows" / "enrollment.yaml"
SECRETS = {k: getattr(TestConfig, k) for k in ("SECRET_KEY", "DATA_KEY", "INDEX_KEY", "HISTORY_KEY")}

pytestmark = pytest.mark.slow


@dataclass
class World:
    tmp: Path
    app: Flask
    env: dict[str, str]
    consumers: list[subprocess.Popen[bytes]]

    def start_consumer(self, **env: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"consumer-{len(self.consumers)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "huey.bin.huey_consumer", "gzsb.worker.tasks.huey", "-w", "1", "-k", "process",
             "-n", "-d", "0.1", "-m", "0.5"],
            env={**self.env, **env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.consumers.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        os.killpg(process.pid, signal.SIGKILL)  # the consumer and its worker, mid-job
        process.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp.glob("consumer-*.log")))


def _world(tmp: Path, clock: Any, *, redis_url: str, matcher: str) -> Iterator[World]:
    instance, database, uploads = tmp / "instance", tmp / "gzsb.sqlite3", tmp / "uploads"
    instance.mkdir()
    settings = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}",
        "STORAGE_BACKEND": "local",
        "UPLOADS_DIR": str(uploads),
        "FACE_MATCHER": matcher,
        "FACE_DISPATCH": "huey",
        "DEEPFACE_HOME": str(tmp / "deepface"),
        "REDIS_URL": redis_url,
        "HUEY_SQLITE_PATH": str(instance / "huey.sqlite3"),
        "HUEY_IMMEDIATE": False,
        "HUEY_NAME": f"gzsb-test-{uuid.uuid4().hex[:8]}",
    }
    config = type("WorkerTestConfig", (TestConfig,), settings)
    app = create_app(config, clock=clock)
    with app.app_context():
        db.create_all()
        publish(db.session, load_flow_file(FLOW_FILE))
        db.session.add(ConfirmationPoint(code="NK01", name="南开区招生考试中心"))
        db.session.commit()
        import_catalog(db.session, CATALOG_CSV)
    # The web side queues into the same storage the consumer reads (a file, or a Redis name).
    original = jobs.huey.storage
    jobs.huey.storage = jobs.make_huey(config).storage
    env = {
        **os.environ,
        **SECRETS,
        "PYTHONPATH": str(ROOT),
        "GZSB_INSTANCE": str(instance),
        "DATABASE_URL": settings["SQLALCHEMY_DATABASE_URI"],
        "STORAGE_BACKEND": "local",
        "UPLOADS_DIR": str(uploads),
        "FACE_MATCHER": matcher,
        "DEEPFACE_HOME": settings["DEEPFACE_HOME"],
        "HUEY_NAME": settings["HUEY_NAME"],
        "REDIS_URL": redis_url,
    }
    world = World(tmp, app, env, [])
    try:
        with app.app_context():
            yield world
            db.session.remove()
    finally:
        for process in world.consumers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if redis_url:
            jobs.huey.storage.flush_all()
        jobs.huey.storage = original


@pytest.fixture
def sqlite_world(tmp_path: Path, clock: Any) -> Iterator[World]:
    yield from _world(tmp_path, clock, redis_url="", matcher="deepface")


@pytest.fixture
def redis_world(tmp_path: Path, clock: Any) -> Iterator[World]:
    url = test_redis_url()
    if not url:
        pytest.skip("TEST_REDIS_URL is not set: the Huey-on-Redis consumer test is skipped")
    yield from _world(tmp_path, clock, redis_url=url, matcher="deepface")


@pytest.fixture
def fake_world(tmp_path: Path, clock: Any) -> Iterator[World]:
    yield from _world(tmp_path, clock, redis_url="", matcher="fake")


def student_client(world: World) -> tuple[Any, Any]:
    who = new_applicant(1)
    to_confirming(engine(), who)
    engine().fire(who.application_id, "confirm_info", who.actor, {})
    engine().fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    # From here on the web side runs on real time, like the consumer (it has no test clock),
    # so that queueing and starting times compare. Nothing after consent has a time window.
    world.app.extensions["gzsb.clock"].now = datetime.now(UTC)
    client = world.app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    login = {"login": demo_student(1).id_number, "password": who.password, "csrf_token": token}
    assert client.post("/login", data=login).status_code == 302
    return who, client


def upload(client: Any, who: Any, photo: bytes, id_card: bytes) -> None:
    page = client.get("/application").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    db.session.expire_all()
    version = db.session.get(Application, who.application_id).version
    data = {
        "csrf_token": token,
        "version": version,
        "photo": (io.BytesIO(photo), "photo.jpg"),
        "id_card": (io.BytesIO(id_card), "card.jpg"),
    }
    response = client.post("/application/identity/upload", data=data, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]


def wait_for_state(world: World, who: Any, *, leaving: str = "face_checking", seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.expire_all()
        state = db.session.get(Application, who.application_id).state
        if state != leaving:
            return state
        time.sleep(0.2)
    pytest.fail(f"still {leaving} after {seconds} s; consumer logs:\n{world.logs()}")


def face_events(who: Any) -> list[tuple[str, str, str, dict[str, Any]]]:
    rows = db.session.execute(
        select(HistoryEvent.event, HistoryEvent.to_state, HistoryEvent.actor, HistoryEvent.payload)
        .where(HistoryEvent.application_id == who.application_id, HistoryEvent.event.like("face_%"))
        .order_by(HistoryEvent.seq)
    )
    return [(e, s, a, json.loads(p)) for e, s, a, p in rows]


def whole_step(world: World) -> None:
    world.start_consumer()
    who, client = student_client(world)
    obama, obama2, biden = ((FACES / n).read_bytes() for n in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    upload(client, who, obama, biden)
    assert "比对中" in client.get("/application").get_data(as_text=True)
    assert wait_for_state(world, who) == "identity_pending"
    assert "人脸不一致" in client.get("/application").get_data(as_text=True)
    upload(client, who, obama, obama2)
    assert wait_for_state(world, who) == "identity_verified"
    assert client.get("/application/status").get_json()["state"] == "identity_verified"
    assert "认证成功" in client.get("/application/identity/result").get_data(as_text=True)
    (mismatch, matched) = face_events(who)
    assert mismatch[:3] == ("face_mismatch", "identity_pending", "system:faces")
    assert matched[:3] == ("face_matched", "identity_verified", "system:faces")
    assert matched[3]["model"] == "Dlib" and matched[3]["threshold"] == 0.415 and matched[3]["band"] == "pass"
    assert matched[3]["distance"] < 0.6 < mismatch[3]["distance"]
    # The weights were copied into the consumer's deepface home at first use.
    assert (world.tmp / "deepface" / ".deepface" / "weights" / "dlib_face_recognition_resnet_model_v1.dat").is_file()


def test_identity_step_through_a_real_consumer_on_sqlite(sqlite_world: World) -> None:
    whole_step(sqlite_world)


@pytest.mark.redis
def test_identity_step_through_a_real_consumer_on_redis(redis_world: World) -> None:
    whole_step(redis_world)


def solid(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 400), colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_worker_killed_mid_job_is_replaced_and_the_application_is_not_stuck(fake_world: World) -> None:
    world = fake_world
    first = world.start_consumer(FACE_FAKE_DELAY="60")  # it will never finish this job
    who, client = student_client(world)
    upload(client, who, solid((200, 40, 40)), solid((205, 45, 35)))
    # Wait until the consumer has taken the job off the queue and is working on it.
    deadline = time.monotonic() + 60
    while jobs.huey.pending_count() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert jobs.huey.pending_count() == 0, world.logs()
    time.sleep(1.0)
    world.kill(first)
    db.session.expire_all()
    assert db.session.get(Application, who.application_id).state == "face_checking"

    world.start_consumer(FACE_FAKE_DELAY="0")
    # The tick's safety net, a lease later: the job is queued again for the new consumer.
    lease = timedelta(seconds=world.app.config["FACE_JOB_LEASE_SECONDS"])
    later = datetime.now(UTC) + lease + timedelta(seconds=1)
    requeued, failed = requeue_stale_jobs(db.session, engine(), jobs.enqueue_job, later, lease=lease, max_dispatches=3)
    assert (requeued, failed) == (1, 0)
    assert wait_for_state(world, who, seconds=60) in {"identity_verified", "identity_pending"}
    events = face_events(who)
    assert [e[0] for e in events] == ["face_matched"], events


# ------------------------------------------------------------------ the daily cap on PostgreSQL


def test_the_daily_cap_per_id_number_holds_under_parallel_attempts(pg_app: Flask) -> None:
    """Twelve uploads of one ID number at once against a cap of five: exactly five counted,
    1..5 once each, the rest refused, nothing over the cap (one statement each, no read-then-write)."""
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    start = threading.Barrier(12)
    answers: list[int | None] = []
    lock = threading.Lock()

    def attempt() -> None:
        with pg_app.app_context():
            start.wait()
            count = take_attempt(db.session, "idx-parallel", now, 5)
            db.session.commit()
            with lock:
                answers.append(count)
            db.session.remove()

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(a for a in answers if a is not None) == [1, 2, 3, 4, 5]
    assert answers.count(None) == 7
    db.session.expire_all()
    assert db.session.get(FaceAttemptDay, ("idx-parallel", "2026-12-01")).count == 5
    # Another Beijing day starts from one (16:00 UTC is midnight in Beijing).
    assert take_attempt(db.session, "idx-parallel", datetime(2026, 12, 1, 16, 0, tzinfo=UTC), 5) == 1
    db.session.commit()

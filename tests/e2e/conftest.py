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

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from gzsb.accounts.service import create_account
from gzsb.app import create_app
from gzsb.bootstrap import vault
from gzsb.cli.demo import CONFIRMATION_POINTS, DEMO_PASSWORD, STAFF, id_number, import_reference_data
from gzsb.config import ROOT, TestConfig
from gzsb.extensions import db
from gzsb.models import ConfirmationPoint
from gzsb.store import publish
from gzsb.worker import tasks as jobs
from gzsb.workflow.loader import load_flow_file
from tests.conftest import FLOW_FILE, IN_WINDOW, Clock, _make_app
from tests.e2e.support import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORTS,
    LiveServer,
    Screen,
    WorkerServer,
    open_screen,
    serving,
)


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
    try:
        with serving(app, clock, "e2e-server") as server:
            yield server
    finally:
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
    with open_screen(browser, live_server.url, request.param) as opened:
        yield opened


class RunningClock(Clock):
    """Real time, the consumer's time too, whenever it is inside the shipped flow's
    registration window (the pages before 信息确认 need it open); otherwise time running from
    ``IN_WINDOW``, so the journey still works on any date (the consumer's own timestamps,
    e.g. of the face match, then show the real date)."""

    def __init__(self) -> None:
        window = load_flow_file(FLOW_FILE).windows["registration"]
        real = datetime.now(UTC)
        super().__init__(real if window.phase(real) == "open" else IN_WINDOW)
        self.started = time.monotonic()

    def __call__(self) -> datetime:
        return self.now + timedelta(seconds=time.monotonic() - self.started)


# The consumer gets the test configuration's keys (it decrypts what the web side stored).
SECRETS = ("SECRET_KEY", "DATA_KEY", "INDEX_KEY", "HISTORY_KEY", "OTP_KEY", "FORM_KEY", "PAYMENT_SIGN_KEY")


@pytest.fixture(scope="module")
def worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerServer]:
    """The app served as `make run` serves it: uploads in a folder, background work (face
    match with the real deepface matcher, the sandbox gateway's notifies, the PDF render) in
    a real Huey consumer started with `huey_consumer gzsb.worker.tasks.huey` on a SQLite queue, the
    consumer configured through the environment like in production. Plus the demo staff
    member of 南开区招生考试中心 (gzsb.cli.demo.STAFF).

    The consumer runs without its periodic tasks (``-n``): the due-timer tick would act on
    the real date, which may not be the web side's (see RunningClock); every job of the
    journey is queued by a request right after its transition, as in production."""
    folder = tmp_path_factory.mktemp("worker")
    instance, uploads = folder / "instance", folder / "uploads"
    instance.mkdir()
    clock = RunningClock()
    settings = {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'gzsb.sqlite3'}",
        "STORAGE_BACKEND": "local",
        "UPLOADS_DIR": str(uploads),
        "REDIS_URL": "",
        "HUEY_IMMEDIATE": False,
        "HUEY_SQLITE_PATH": str(instance / "huey.sqlite3"),  # where the consumer's Config looks
        "HUEY_NAME": f"gzsb-e2e-{uuid.uuid4().hex[:8]}",
        "FACE_MATCHER": "deepface",  # the web side only runs its HOG detector (no TensorFlow)
        "FACE_DISPATCH": "huey",
        "DEEPFACE_HOME": str(folder / "deepface"),
        "SMS_DEV_PAGE": True,
    }
    config = type("WorkerE2EConfig", (TestConfig,), settings)
    app = create_app(config, clock=clock)
    with app.app_context():
        db.create_all()
        publish(db.session, load_flow_file(FLOW_FILE))
        points = {}
        for code, name, address in CONFIRMATION_POINTS:
            point = ConfirmationPoint(code=code, name=name, address=address)
            db.session.add(point)
            db.session.flush()
            points[code] = point.id
        role, name, seed17, mobile, point_code = STAFF[0]
        create_account(
            db.session, vault(), name=name, id_number=id_number(seed17), password=DEMO_PASSWORD,
            mobile=mobile, role=role, confirmation_point_id=points[point_code],
        )  # fmt: skip
        db.session.commit()
        import_reference_data(db.session, vault())
        db.session.remove()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    # The gateway's notify comes back to this server; the form's QR code points at it.
    app.config.update(PAYMENT_NOTIFY_BASE_URL=url, PUBLIC_BASE_URL=url)
    thread = threading.Thread(target=server.serve_forever, name="e2e-worker-server", daemon=True)
    thread.start()
    # The web side queues into the consumer's SQLite file (the tasks are those of gzsb.worker.tasks).
    original_storage = jobs.huey.storage
    jobs.huey.storage = jobs.make_huey(config).storage
    env = {
        **os.environ,
        **{key: str(getattr(config, key)) for key in SECRETS},
        "PYTHONPATH": str(ROOT),
        "GZSB_INSTANCE": str(instance),
        "DATABASE_URL": settings["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": "",
        "STORAGE_BACKEND": "local",
        "UPLOADS_DIR": str(uploads),
        "HUEY_NAME": settings["HUEY_NAME"],
        "FACE_MATCHER": "deepface",
        "DEEPFACE_HOME": settings["DEEPFACE_HOME"],
        "PUBLIC_BASE_URL": url,
        "PAYMENT_NOTIFY_BASE_URL": url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    consumer_bin = Path(sys.executable).with_name("huey_consumer")
    command = [str(consumer_bin)] if consumer_bin.exists() else [sys.executable, "-m", "huey.bin.huey_consumer"]
    # As `make run` starts it (process workers: a job's time limit works there), one worker,
    # no periodic tasks (see above), polling often so the journey does not wait.
    command += ["gzsb.worker.tasks.huey", "-w", "1", "-k", "process", "-n", "-d", "0.1", "-m", "0.5"]
    log = (folder / "consumer.log").open("wb")
    consumer = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    handle = WorkerServer(url, app, clock, folder=folder, consumer=consumer)
    try:
        deadline = time.monotonic() + 60
        while "Huey consumer started" not in handle.logs() and consumer.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"the Huey consumer did not start within 60 s:\n{handle.logs()}")
            time.sleep(0.2)
        if consumer.poll() is not None:
            pytest.fail(f"the Huey consumer exited with {consumer.returncode}:\n{handle.logs()}")
        yield handle
    finally:
        if consumer.poll() is None:
            os.killpg(consumer.pid, signal.SIGTERM)
            try:
                consumer.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(consumer.pid, signal.SIGKILL)
                consumer.wait(timeout=10)
        log.close()
        jobs.huey.storage = original_storage
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()

"""Huey tasks. SQLite storage by default (a queue in a file); Redis when REDIS_URL is set.

Run a consumer with ``huey_consumer gzsb.worker.tasks.huey``.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from huey import RedisHuey, SqliteHuey, crontab
from huey.api import PeriodicTask, Task
from huey.exceptions import CancelExecution

from gzsb.config import Config, insecure_defaults
from gzsb.errors import ConfigurationError
from gzsb.ops.logs import configure_logging, request_id
from gzsb.worker import outbox
from gzsb.worker.periodic import beat, claim_period
from gzsb.worker.retention import sweep

log = logging.getLogger(__name__)


def make_huey(config: Any = Config) -> Any:
    name = getattr(config, "HUEY_NAME", "gzsb")  # tests sharing one Redis use their own
    if config.REDIS_URL:
        return RedisHuey(name, url=config.REDIS_URL, immediate=config.HUEY_IMMEDIATE)
    Path(config.HUEY_SQLITE_PATH).parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name, filename=config.HUEY_SQLITE_PATH, immediate=config.HUEY_IMMEDIATE)


def refuse_default_keys(config: Any = Config) -> None:
    """The consumer refuses at start (not at its first task) what create_app() refuses."""
    defaults = insecure_defaults(config)
    if defaults:
        raise ConfigurationError("worker refuses development defaults outside development: " + ", ".join(defaults))


refuse_default_keys()
# The consumer's own logging covers only the "huey" logger: ours gets its handler here.
configure_logging(Config.LOG_LEVEL, Config.LOG_FORMAT)
huey = make_huey()
_flask_app = None


def use_app(app: Any) -> None:
    """Run tasks against this Flask app (tests, or a consumer started with its own config)."""
    global _flask_app
    _flask_app = app


def flask_app() -> Any:
    global _flask_app
    if _flask_app is None:
        from gzsb.app import create_app

        _flask_app = create_app()
    return _flask_app


def render_sms(template: str, account: Any) -> str:
    return flask_app().config["SMS_TEMPLATES"][template].format(name=account.name)


# Periodic work holds a lock while it runs: two consumers (or a slow tick and the next
# one) never run the same tick at once. `huey_consumer -f` clears locks a killed one left.
TICK_LOCK = "gzsb-tick"
FORM_SWEEP_LOCK = "gzsb-form-sweep"
IDENTITY_TICK_LOCK = "gzsb-identity-tick"


# How often each periodic task is due (seconds): of the runs N consumers enqueue in one
# period, the first to start claims it and the others are cancelled (gzsb/worker/periodic.py).
PERIODS = {
    "tick": 60,
    "form_sweep": 60,
    "identity_tick": 60,
    "retention_sweep": 300,
    "log_checkpoint": 60 * Config.LOG_CHECKPOINT_MINUTES,
}


@huey.pre_execute()
def _before_task(task: Task) -> None:
    """Log lines of a task carry its id; a periodic run another consumer already made is cancelled."""
    request_id.set(f"task-{task.id}")
    periodic = isinstance(task, PeriodicTask) and task.name in PERIODS
    if periodic and not claim_period(flask_app().config, task.name, datetime.now(UTC), PERIODS[task.name]):
        log.info("%s: this period's run belongs to another consumer", task.name)
        raise CancelExecution()


@huey.post_execute()
def _after_task(_task: Task, _result: Any, _exc: Exception | None) -> None:
    request_id.set("-")


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task(TICK_LOCK)
def tick() -> dict[str, int]:
    """Every minute: due timers (e.g. unpaid orders), pending SMS, and outbox jobs (报名表
    renders, sandbox notifies) that were never queued or whose worker died."""
    from gzsb.adapters.sms import sms_sender
    from gzsb.bootstrap import engine, vault
    from gzsb.extensions import db
    from gzsb.worker.drain import drain_outbox, fire_due_timers

    with flask_app().app_context():
        now = datetime.now(UTC)
        fired = fire_due_timers(db.session, engine(), now)
        sent = drain_outbox(db.session, vault(), sms_sender(flask_app().config, db.session, vault()), render_sms, now)
        queued = outbox.redispatch(db.session, enqueue_outbox, now)
    beat(flask_app().config, now)  # /readyz: the tick is alive
    if fired or sent or queued:
        log.info("tick: %d timer(s) fired, %d SMS sent, %d job(s) queued", fired, sent, queued)
    return {"timers": fired, "sms": sent, "jobs": queued}


LOG_CHECKPOINT_LOCK = "gzsb-log-checkpoint"


@huey.periodic_task(crontab(minute=f"*/{Config.LOG_CHECKPOINT_MINUTES}"))
@huey.lock_task(LOG_CHECKPOINT_LOCK)
def log_checkpoint() -> int:
    """Every few minutes: new history events get their log leaves and a checkpoint is signed (issue 12)."""
    from gzsb.worker.audit_tasks import checkpoint_log

    with flask_app().app_context():
        return checkpoint_log()


# --- registration forms (2.12) ---


def _render_form(application_id: int, now: datetime) -> bool:
    """Render (or keep) one approved application's 报名表, in the current app context."""
    from flask import current_app

    from gzsb.adapters.pdf import pdf_renderer
    from gzsb.bootstrap import storage
    from gzsb.extensions import db
    from gzsb.regform.service import render_form

    return render_form(db.session, application_id, pdf_renderer(current_app.config), storage(), now) is not None


def _run_form_job(outbox_id: int, token: int, now: datetime) -> bool | None:
    """One render job in the current app context; None when it is obsolete."""
    from gzsb.adapters.pdf import PdfError
    from gzsb.extensions import db

    item = outbox.start(db.session, outbox_id, token)
    if item is None or item.application_id is None:
        return None
    try:
        rendered = _render_form(item.application_id, now)
    except PdfError as exc:
        # The job ran: the failure is on the form row, whose retry time decides the next job.
        outbox.finish(db.session, item, now, error=f"PdfError: {exc}")
        raise
    except Exception as exc:
        outbox.fail(db.session, item, f"{type(exc).__name__}: {exc}")  # the lease ends, the tick retries
        raise
    outbox.finish(db.session, item, now)
    return rendered


@huey.task(retries=2, retry_delay=30)
def render_registration_form(outbox_id: int, token: int) -> bool | None:
    """Render (or keep) the 报名表 PDF of the application an outbox job names."""
    with flask_app().app_context():
        return _run_form_job(outbox_id, token, datetime.now(UTC))


def enqueue_form_render(application_id: int) -> None:
    """Ask the worker for a form: an outbox job (one per application while unfinished), then
    the quick path. With HUEY_IMMEDIATE (tests) the render happens right here, in the
    caller's app context and clock; a failure is recorded on the form row."""
    from flask import current_app

    from gzsb.adapters.pdf import PdfError
    from gzsb.extensions import db

    now = current_app.extensions["gzsb.clock"]()
    item = outbox.pending(db.session, outbox.RENDER_FORM, application_id)
    if item is None:
        item = outbox.add(db.session, outbox.RENDER_FORM, application_id)
        db.session.commit()
    if not current_app.config.get("HUEY_IMMEDIATE"):
        outbox.dispatch(db.session, item, enqueue_outbox, now)
        return
    token = outbox.claim(db.session, item, now)
    if token is None:
        return  # a run of it is under way
    try:
        _run_form_job(item.id, token, now)
    except PdfError as exc:  # render_form logged it and stored it on the row; the page says so
        log.info("inline form render of application %d failed: %s", application_id, exc)


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task(FORM_SWEEP_LOCK)
def form_sweep() -> int:
    """Every minute: approved applications without a fresh form get one rendered, so the PDF
    is usually ready before the student opens the page."""
    from gzsb.extensions import db
    from gzsb.regform.service import stale_applications

    with flask_app().app_context():
        ids = stale_applications(db.session, datetime.now(UTC))
        for application_id in ids:
            enqueue_form_render(application_id)
    if ids:
        log.info("form sweep: %d render(s) requested", len(ids))
    return len(ids)


# --- payments: the sandbox gateway's notify delivery ---


@huey.task()
def sandbox_notify(outbox_id: int, token: int) -> int | None:
    """POST the signed notify of a paid sandbox trade; schedule the next send (a retry while
    we do not answer ``success``, then one repeat) as the sandbox's schedule says."""
    from gzsb.adapters.payments import transport
    from gzsb.adapters.payments_sandbox_server import Sandbox
    from gzsb.extensions import db

    app = flask_app()
    with app.app_context():
        now = app.extensions["gzsb.clock"]()
        item = outbox.start(db.session, outbox_id, token)
        if item is None:
            return None
        attempt = int(item.payload.get("attempt", 0))
        delay = Sandbox.of(app, db.session).deliver_notify(str(item.payload["trade_no"]), transport(app), attempt)
        if delay is None:
            outbox.finish(db.session, item, now)
            return None
        following = outbox.later(db.session, item, now, delay, attempt=attempt + 1)
    sandbox_notify.schedule(args=(outbox_id, following), delay=delay)
    return delay


def send_sandbox_notify(trade_no: str) -> None:
    """The sandbox has taken a payment: its notify goes out through the outbox (committed
    here), queued at once; the tick sends it if the queue loses it."""
    from flask import current_app

    from gzsb.extensions import db

    item = outbox.add(db.session, outbox.SANDBOX_NOTIFY, None, trade_no=trade_no, attempt=0)
    db.session.commit()
    outbox.dispatch(db.session, item, enqueue_outbox, current_app.extensions["gzsb.clock"]())


# --- admin: fleet impact reports and migrations too large for a request (issue 11) ---


def _run_flow_job(outbox_id: int, token: int) -> str | None:
    """One fleet job in the current app context; its lease is renewed as it makes progress."""
    from flask import current_app

    from gzsb.admin import flow_jobs
    from gzsb.bootstrap import engine
    from gzsb.extensions import db

    now = current_app.extensions["gzsb.clock"]()
    item = outbox.start(db.session, outbox_id, token)
    if item is None:
        return None

    def heartbeat() -> None:
        item.lease_until = datetime.now(UTC) + outbox.LEASE

    done = flow_jobs.run(db.session, engine(), int(item.payload["job_id"]), now=now, heartbeat=heartbeat)
    outbox.finish(db.session, item, now)
    return done.status if done is not None else None


@huey.task()
def flow_job(outbox_id: int, token: int) -> str | None:
    with flask_app().app_context():
        return _run_flow_job(outbox_id, token)


def enqueue_flow_job(job_id: int) -> None:
    """Commit the (flushed) job row with its outbox row, then queue it; under HUEY_IMMEDIATE
    (tests) it runs right here, in the caller's app context and clock."""
    from flask import current_app

    from gzsb.extensions import db

    now = current_app.extensions["gzsb.clock"]()
    item = outbox.add(db.session, outbox.FLOW_JOB, None, job_id=job_id)
    db.session.commit()
    if not current_app.config.get("HUEY_IMMEDIATE"):
        outbox.dispatch(db.session, item, enqueue_outbox, now)
        return
    token = outbox.claim(db.session, item, now)
    if token is not None:
        _run_flow_job(item.id, token)


@huey.task()
def payment_job(outbox_id: int, token: int) -> int | None:
    """A payments outbox job (issue 15): ask the gateway about an order, refund a double or
    late payment, close an expired order at the gateway. Runs again after the delay it asks
    for; a gateway failure keeps the lease, and the tick queues it again when it ends."""
    from gzsb.bootstrap import engine
    from gzsb.extensions import db
    from gzsb.payments.settle import run_job

    app = flask_app()
    with app.app_context():
        now = app.extensions["gzsb.clock"]()
        item = outbox.start(db.session, outbox_id, token)
        if item is None:
            return None
        try:
            delay = run_job(app, db.session, engine(), item.kind, dict(item.payload), now)
        except Exception as exc:
            db.session.rollback()
            outbox.fail(db.session, item, f"{type(exc).__name__}: {exc}")
            raise
        if delay is None:
            outbox.finish(db.session, item, now)
            return None
        following = outbox.later(db.session, item, now, delay, round=int(item.payload.get("round", 0)) + 1)
    if app.config.get("HUEY_IMMEDIATE"):
        return delay  # tests run the next round themselves
    payment_job.schedule(args=(outbox_id, following), delay=delay)
    return delay


def schedule_payment_job(outbox_id: int, delay: float) -> None:
    """Queue a payments job to run after ``delay`` seconds (the tick is the safety net)."""
    from flask import current_app

    from gzsb.extensions import db
    from gzsb.models import Outbox

    if current_app.config.get("HUEY_IMMEDIATE"):
        return  # tests run it through the tick's redispatch, on their own clock
    item = db.session.get(Outbox, outbox_id)
    token = outbox.claim(db.session, item, current_app.extensions["gzsb.clock"]()) if item is not None else None
    if token is None:
        return
    payment_job.schedule(args=(outbox_id, token), delay=delay)


OUTBOX_TASKS = {
    outbox.RENDER_FORM: render_registration_form,
    outbox.SANDBOX_NOTIFY: sandbox_notify,
    outbox.FLOW_JOB: flow_job,
    outbox.PAYMENT_CHECK: payment_job,
    outbox.PAYMENT_REFUND: payment_job,
    outbox.PAYMENT_CLOSE: payment_job,
}


def enqueue_outbox(kind: str, outbox_id: int, token: int) -> None:
    """Queue the Huey task of an outbox job."""
    OUTBOX_TASKS[kind](outbox_id, token)


# --- identity (issue 4): the face match, its safety net, the ID-card retention ---


class JobTimeout(Exception):
    """A face match ran longer than FACE_JOB_TIMEOUT."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """SIGALRM limit where the task runs in a process's main thread (``-k process``); with
    thread workers the requeue lease is what ends a hung job."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise JobTimeout(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@huey.task(retries=Config.FACE_JOB_RETRIES, retry_delay=Config.FACE_JOB_RETRY_DELAY, context=True)
def face_match(outbox_id: int, task: Any = None) -> str:
    """Compare the two images of one upload; fire the result through the engine. Crashes
    and timeouts are retried; the last retry ends the check as failed (never stuck)."""
    from gzsb.adapters.faces import face_matcher
    from gzsb.bootstrap import engine, storage
    from gzsb.extensions import db
    from gzsb.identity.service import run_face_job

    app = flask_app()
    final = task is None or task.retries <= 0
    with app.app_context():
        matcher = face_matcher(app.config)
        with time_limit(app.config["FACE_JOB_TIMEOUT"]):
            outcome = run_face_job(db.session, engine(), storage(), matcher, outbox_id, final=final)
    log.info("face job %d: %s", outbox_id, outcome)
    return outcome


JOBS = {"face_match": face_match}


def enqueue_job(name: str, outbox_id: int) -> None:
    """Queue the Huey task a job outbox item names."""
    try:
        task = JOBS[name]
    except KeyError:
        raise LookupError(f"unknown job {name!r}; known: {', '.join(sorted(JOBS))}") from None
    task(outbox_id)


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task(IDENTITY_TICK_LOCK)
def identity_tick() -> dict[str, int]:
    """Every minute: queue job items nobody queued, queue again those whose worker died (or
    end them as failed), and delete ID-card images past their retention."""
    from gzsb.bootstrap import engine, storage
    from gzsb.extensions import db
    from gzsb.identity.service import purge_id_cards
    from gzsb.worker.drain import dispatch_jobs, requeue_stale_jobs

    app = flask_app()
    config = app.config
    with app.app_context():
        now = datetime.now(UTC)
        queued = dispatch_jobs(db.session, enqueue_job, now)
        requeued, failed = requeue_stale_jobs(
            db.session, engine(), enqueue_job, now,
            lease=timedelta(seconds=config["FACE_JOB_LEASE_SECONDS"]),
            max_dispatches=config["FACE_JOB_MAX_DISPATCHES"],
            queue_wait=timedelta(seconds=config["FACE_JOB_QUEUE_WAIT_SECONDS"]),
        )  # fmt: skip
        purged = purge_id_cards(db.session, engine(), storage(), now, timedelta(hours=config["IDCARD_RETENTION_HOURS"]))
    if queued or requeued or failed or purged:
        log.info(
            "identity tick: %d queued, %d requeued, %d failed, %d ID card(s) purged", queued, requeued, failed, purged
        )
    return {"queued": queued, "requeued": requeued, "failed": failed, "purged": purged}


# --- retention of every upload kind (issue 14) ---

RETENTION_LOCK = "gzsb-retention"


@huey.periodic_task(crontab(minute="*/5"))
@huey.lock_task(RETENTION_LOCK)
def retention_sweep() -> dict[str, int]:
    """Every five minutes: withdrawn face images, uploads past their deadline, deletion
    requests, orphaned files."""
    app = flask_app()
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        return sweep(db.session, app.extensions["gzsb.storage"], datetime.now(UTC), app.config)

"""One background path: every kind of side effect is an outbox row, so a job whose worker was
killed (or that was never queued) is queued again by the tick, and two consumers never run
the same item or the same tick."""

from __future__ import annotations

from datetime import timedelta

import pytest
from huey.exceptions import TaskLockedException
from sqlalchemy import select

from gzsb.bootstrap import engine, vault
from gzsb.extensions import db
from gzsb.models import Application, Outbox, RegistrationForm, SandboxTrade, SmsMessage
from gzsb.regform import service as forms
from gzsb.worker import outbox
from gzsb.worker import tasks as jobs
from gzsb.worker.drain import dispatch_jobs, drain_outbox, requeue_stale_jobs
from tests.identity.test_service import RED, RED2, at_identity, png, submit
from tests.payments.test_service import order_of, to_order
from tests.payments.test_views import queue, run_scheduled  # noqa: F401 - the fixture (immediate Huey on this app)
from tests.regform.test_service import approve
from tests.support import to_manual_identity


class Recorder:
    """A queue that takes jobs and never runs them: a consumer killed right after taking them."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, int, int]] = []

    def __call__(self, kind: str, outbox_id: int, token: int) -> None:
        self.taken.append((kind, outbox_id, token))


def item(outbox_id: int) -> Outbox:
    db.session.expire_all()
    row = db.session.get(Outbox, outbox_id)
    assert row is not None
    return row


def state_of(who) -> str:
    db.session.expire_all()
    return db.session.get(Application, who.application_id).state


@pytest.mark.usefixtures("queue")
def test_a_render_job_whose_worker_died_is_queued_again_after_its_lease(app, clock, make_applicant) -> None:
    who = make_applicant()
    record = approve(engine(), who)
    job = outbox.add(db.session, outbox.RENDER_FORM, record.id)
    db.session.commit()
    killed = Recorder()
    assert outbox.dispatch(db.session, job, killed, clock.now)  # the quick path; the worker dies
    ((_, _, first_token),) = killed.taken

    tick = Recorder()
    assert outbox.redispatch(db.session, tick, clock.now + outbox.LEASE - timedelta(seconds=1)) == 0
    assert outbox.redispatch(db.session, tick, clock.now + outbox.LEASE) == 1
    ((kind, outbox_id, token),) = tick.taken
    assert (kind, outbox_id) == (outbox.RENDER_FORM, job.id) and token == first_token + 1

    # The first run wakes up after all: it is obsolete and does nothing.
    assert jobs.render_registration_form.call_local(job.id, first_token) is None
    assert forms.fresh_pdf(db.session, record) is None
    jobs.enqueue_outbox(kind, outbox_id, token)  # the consumer runs the second one
    db.session.expire_all()
    assert forms.fresh_pdf(db.session, db.session.get(Application, record.id)) is not None
    assert item(job.id).done_at is not None
    assert outbox.redispatch(db.session, tick, clock.now + 10 * outbox.LEASE) == 0  # done: never again


@pytest.mark.usefixtures("queue")
def test_a_form_request_is_an_outbox_row_and_a_never_queued_one_is_sent_by_the_tick(app, clock, make_applicant) -> None:
    who = make_applicant()
    record = approve(engine(), who)
    with app.test_request_context():
        app.config["HUEY_IMMEDIATE"] = False  # as in production: the quick path queues it
        try:
            jobs.enqueue_form_render(record.id)
        finally:
            app.config["HUEY_IMMEDIATE"] = True
    (row,) = db.session.scalars(select(Outbox).where(Outbox.kind == outbox.RENDER_FORM)).all()
    assert row.application_id == record.id and item(row.id).done_at is not None  # immediate queue ran it

    # A request whose process died before the quick path: only the row exists.
    form = db.session.scalars(select(RegistrationForm)).one()
    form.pdf, form.digest = None, ""
    lost = outbox.add(db.session, outbox.RENDER_FORM, record.id)
    db.session.commit()
    jobs.use_app(app)
    assert jobs.tick.call_local()["jobs"] == 1
    assert item(lost.id).done_at is not None
    db.session.expire_all()
    assert forms.fresh_pdf(db.session, db.session.get(Application, record.id)) is not None


def paid_trade(app, who, clock) -> SandboxTrade:
    order = order_of(who)
    trade = SandboxTrade(
        trade_no="SBX-KILLED-1",
        merchant_id=app.config["PAYMENT_MERCHANT_ID"],
        out_trade_no=order.number,
        channel="alipay",
        subject="报名考试费",
        amount_fen=order.amount_fen,
        currency="CNY",
        notify_url="http://localhost/payment/notify/sandbox",
        return_url="http://localhost/",
        expires_at=order.deadline,
        status="TRADE_SUCCESS",
        created_at=clock.now,
        paid_at=clock.now,
    )
    db.session.add(trade)
    db.session.commit()
    return trade


@pytest.mark.usefixtures("queue")
def test_a_sandbox_notify_whose_worker_died_is_sent_again(app, clock, make_applicant) -> None:
    who = make_applicant()
    to_order(who)
    trade = paid_trade(app, who, clock)
    job = outbox.add(db.session, outbox.SANDBOX_NOTIFY, None, trade_no=trade.trade_no, attempt=0)
    db.session.commit()
    assert outbox.dispatch(db.session, job, Recorder(), clock.now)  # taken by a consumer that dies
    assert state_of(who) == "payment_pending"

    clock.advance(seconds=outbox.LEASE.total_seconds())
    assert outbox.redispatch(db.session, jobs.enqueue_outbox, clock.now) == 1  # runs at once (immediate queue)
    assert state_of(who) == "approved"
    db.session.expire_all()
    assert db.session.get(SandboxTrade, trade.id).notify_acked_at is not None
    # Acknowledged: one repeat follows (scheduled), after which the job is finished.
    assert item(job.id).done_at is None and len(jobs.huey.scheduled()) == 1
    assert outbox.redispatch(db.session, Recorder(), clock.now) == 0  # the repeat holds the lease
    run_scheduled(jobs.huey)
    assert item(job.id).done_at is not None
    assert db.session.get(SandboxTrade, trade.id).notify_attempts == 2


def test_the_cashier_writes_the_notify_to_the_outbox(app, clock, make_applicant) -> None:
    """With the queue down the payment is not lost: the row waits for the tick."""
    who = make_applicant()
    to_order(who)
    trade = paid_trade(app, who, clock)
    down = {outbox.SANDBOX_NOTIFY: _down}
    previous, jobs.OUTBOX_TASKS = jobs.OUTBOX_TASKS, {**jobs.OUTBOX_TASKS, **down}
    try:
        with app.test_request_context():
            jobs.send_sandbox_notify(trade.trade_no)
    finally:
        jobs.OUTBOX_TASKS = previous
    (row,) = db.session.scalars(select(Outbox).where(Outbox.kind == outbox.SANDBOX_NOTIFY)).all()
    assert row.done_at is None and "enqueue failed" in row.last_error
    taken = Recorder()
    assert outbox.redispatch(db.session, taken, clock.now) == 1 and taken.taken[0][1] == row.id


def _down(outbox_id: int, token: int) -> None:
    raise ConnectionError("queue unreachable")


def test_a_face_job_whose_worker_died_is_queued_again_and_answers(app, clock, make_applicant) -> None:
    who = make_applicant()
    at_identity(who)
    submit(app, who, png(RED), png(RED2))  # FACE_DISPATCH is "none" in tests: nobody queued it
    lost: list[tuple[str, int]] = []
    assert dispatch_jobs(db.session, lambda name, outbox_id: lost.append((name, outbox_id)), clock.now) == 1
    assert state_of(who) == "face_checking"

    lease = timedelta(seconds=app.config["FACE_JOB_LEASE_SECONDS"])
    jobs.use_app(app)
    jobs.huey.immediate = True
    try:
        counts = requeue_stale_jobs(
            db.session, engine(), jobs.enqueue_job, clock.now + 2 * lease, lease=lease, max_dispatches=3
        )
    finally:
        jobs.huey.immediate = False
        jobs.use_app(None)
    assert counts == (1, 0)
    assert state_of(who) == "identity_verified"


def test_an_sms_never_sent_is_sent_by_the_next_tick_once(app, make_applicant) -> None:
    who = make_applicant()
    eng = engine()
    to_manual_identity(eng, who)
    (sms,) = db.session.scalars(select(Outbox).where(Outbox.kind == "sms")).all()
    # A consumer read it and was killed before sending: its claim counted an attempt only.
    db.session.execute(Outbox.__table__.update().where(Outbox.id == sms.id).values(attempts=1))
    db.session.commit()
    jobs.use_app(app)
    assert jobs.tick.call_local()["sms"] == 1
    assert jobs.tick.call_local()["sms"] == 0
    assert len(db.session.scalars(select(SmsMessage)).all()) == 1


def test_two_consumers_reading_the_same_item_claim_it_once(app, clock, make_applicant) -> None:
    who = make_applicant()
    record = approve(engine(), who)
    job = outbox.add(db.session, outbox.RENDER_FORM, record.id)
    db.session.commit()
    with app.app_context():  # a second consumer: its own session, which read the row too
        other = db.session.get(Outbox, job.id)
        assert other is not None and other.attempts == 0
        assert outbox.claim(db.session, other, clock.now) == 1
    assert job.attempts == 0  # this consumer's copy is stale
    assert outbox.claim(db.session, job, clock.now) is None


def test_two_consumers_never_send_the_same_sms(app, make_applicant) -> None:
    who = make_applicant()
    eng = engine()
    to_manual_identity(eng, who)
    sent: list[str] = []

    class Sender:
        def send(self, to: str, body: str) -> None:
            sent.append(body)
            if len(sent) == 1:
                # While the first consumer sends, a second one drains the same outbox.
                with app.app_context():
                    assert drain_outbox(db.session, vault(), Sender(), lambda t, a: t, clock_now()) == 0

    def clock_now():
        return app.extensions["gzsb.clock"]()

    assert drain_outbox(db.session, vault(), Sender(), lambda t, a: t, clock_now()) == 1
    assert len(sent) == 1


def test_a_tick_does_not_run_while_another_holds_its_lock(app, make_applicant) -> None:
    who = make_applicant()
    eng = engine()
    to_manual_identity(eng, who)
    jobs.use_app(app)
    with jobs.huey.lock_task(jobs.TICK_LOCK):  # another consumer's tick is running
        with pytest.raises(TaskLockedException):
            jobs.tick.call_local()
        assert db.session.scalars(select(Outbox).where(Outbox.kind == "sms")).one().sent_at is None
    assert jobs.tick.call_local()["sms"] == 1  # the lock is released with its tick


@pytest.mark.parametrize("task, lock", [("form_sweep", "FORM_SWEEP_LOCK"), ("identity_tick", "IDENTITY_TICK_LOCK")])
def test_every_periodic_task_holds_its_lock(app, task: str, lock: str) -> None:
    jobs.use_app(app)
    with jobs.huey.lock_task(getattr(jobs, lock)), pytest.raises(TaskLockedException):
        getattr(jobs, task).call_local()
    getattr(jobs, task).call_local()

"""Payments on real PostgreSQL (set TEST_DATABASE_URL, else skipped).

Two hundred identical notifies arrive at once over real HTTP (a threaded server on a
loopback port): exactly one paid transition, one history event, one SMS outbox row, one
payment row, and every sender is told ``success``. Bad notifies change nothing; an unpaid
order expires through the durable timer; money arriving after that is kept for refund.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select
from werkzeug.serving import make_server

from gzsb.audit.service import verify_all
from gzsb.bootstrap import engine
from gzsb.extensions import db
from gzsb.models import Application, HistoryEvent, Outbox, Payment, PaymentNotification, PaymentOrder
from gzsb.worker.drain import fire_due_timers
from tests.payments.test_service import BAD, notify_params, order_of, snapshot, to_order
from tests.support import new_applicant

SENDERS = 200


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join(timeout=30)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_two_hundred_concurrent_identical_notifies_pay_once(pg_app: Flask, clock) -> None:
    bystander = new_applicant(1)
    who = new_applicant(2)
    to_order(who)
    order = order_of(who)
    params = notify_params(pg_app, order, clock, trade_no="SBX-RACE-1")
    sms_before = count(Outbox, Outbox.application_id == who.application_id, Outbox.kind == "sms")
    db.session.commit()

    barrier = threading.Barrier(SENDERS)
    replies: list[object] = [None] * SENDERS

    def send(i: int, url: str) -> None:
        try:
            barrier.wait(timeout=60)
            response = requests.post(url, data=params, timeout=120)
            replies[i] = (response.status_code, response.text)
        except BaseException as exc:  # noqa: BLE001 - every outcome is inspected below
            replies[i] = exc

    with live_server(pg_app) as base:
        url = f"{base}/payment/notify/sandbox"
        threads = [threading.Thread(target=send, args=(i, url), name=f"notify-{i}") for i in range(SENDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "a sender hung"
    assert Counter(map(str, replies)) == {"(200, 'success')": SENDERS}

    db.session.expire_all()
    record = db.session.get(Application, who.application_id)
    assert record.state == "approved"
    assert count(HistoryEvent, HistoryEvent.event == "payment_succeeded") == 1
    assert count(Outbox, Outbox.application_id == who.application_id, Outbox.kind == "sms") == sms_before + 1
    (payment,) = db.session.scalars(select(Payment)).all()
    assert (payment.status, payment.trade_no) == ("paid", "SBX-RACE-1")
    assert db.session.scalars(select(PaymentOrder.status)).all() == ["paid"]
    outcomes = Counter(db.session.scalars(select(PaymentNotification.outcome)))
    assert outcomes == {"paid": 1, "duplicate": SENDERS - 1}
    verdicts = list(verify_all(db.session))
    assert verdicts and all(v.ok for v in verdicts), [v.describe() for v in verdicts]
    assert db.session.get(Application, bystander.application_id).seq == 0


@pytest.mark.parametrize("kind", ["bad signature", "wrong amount", "unknown order"])
def test_bad_notifies_change_nothing_on_postgres(pg_app: Flask, clock, kind: str) -> None:
    who = new_applicant(3)
    to_order(who)
    before = snapshot(who)
    response = pg_app.test_client().post("/payment/notify/sandbox", data=BAD[kind](pg_app, order_of(who), clock))
    assert (response.status_code, response.text) == (400, "fail")
    assert snapshot(who) == before
    assert count(Payment) == 0


def test_expiry_by_the_timer_then_a_late_payment_is_kept_for_refund(pg_app: Flask, clock) -> None:
    who = new_applicant(4)
    to_order(who)
    order = order_of(who)
    paid_in_time = notify_params(pg_app, order, clock, trade_no="SBX-LATE-1")
    clock.advance(hours=24, minutes=1)
    assert fire_due_timers(db.session, engine(), clock.now) == 1
    db.session.expire_all()
    assert db.session.get(Application, who.application_id).state == "identity_verified"
    assert order_of_number(order.number).status == "expired"
    before = snapshot(who)

    client = pg_app.test_client()
    for _ in range(3):  # the gateway's retries of the same notify
        response = client.post("/payment/notify/sandbox", data=paid_in_time)
        assert (response.status_code, response.text) == (200, "success")
    assert snapshot(who)[:5] == before[:5]  # state, version and history untouched
    # One outbox job only, however many retries: the automatic refund (issue 15).
    assert snapshot(who)[5] == before[5] + 1
    assert db.session.scalars(select(Outbox.kind).order_by(Outbox.id.desc())).first() == "payment_refund"
    (payment,) = db.session.scalars(select(Payment)).all()
    assert (payment.status, payment.order_number, payment.amount_fen) == ("refund_pending", order.number, 16000)
    # The student can order again and pay the new order normally.
    engine().fire(who.application_id, "create_order", who.actor, {})
    clock.advance(minutes=5)
    fresh = notify_params(pg_app, order_of(who), clock, trade_no="SBX-LATE-2")
    assert client.post("/payment/notify/sandbox", data=fresh).text == "success"
    db.session.expire_all()
    assert db.session.get(Application, who.application_id).state == "approved"
    assert dict(db.session.execute(select(Payment.trade_no, Payment.status)).all()) == {
        "SBX-LATE-1": "refund_pending",
        "SBX-LATE-2": "paid",
    }


def order_of_number(number: str) -> PaymentOrder:
    db.session.expire_all()
    return db.session.scalars(select(PaymentOrder).where(PaymentOrder.number == number)).one()


def test_timer_and_notify_racing_end_in_one_consistent_outcome(pg_app: Flask, clock) -> None:
    """The deadline passes while a notify (paid in time) arrives: either the payment wins
    (approved, no expiry) or the timer wins (expired, payment kept for refund)."""
    who = new_applicant(5)
    to_order(who)
    params = notify_params(pg_app, order_of(who), clock, trade_no="SBX-EDGE-1")
    clock.advance(hours=24, seconds=1)
    db.session.commit()
    results: dict[str, object] = {}

    def timer() -> None:
        with pg_app.app_context():
            results["timer"] = fire_due_timers(db.session, engine(), clock.now)

    def notify() -> None:
        results["notify"] = pg_app.test_client().post("/payment/notify/sandbox", data=params).text

    threads = [threading.Thread(target=timer), threading.Thread(target=notify)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results["notify"] == "success"
    db.session.expire_all()
    state = db.session.get(Application, who.application_id).state
    (payment,) = db.session.scalars(select(Payment)).all()
    if state == "approved":
        assert payment.status == "paid" and results["timer"] == 0
    else:
        assert state == "identity_verified" and payment.status == "refund_pending" and results["timer"] == 1
    assert count(HistoryEvent, HistoryEvent.application_id == who.application_id, HistoryEvent.event.in_(
        ["payment_succeeded", "payment_expired"])) == 1  # fmt: skip

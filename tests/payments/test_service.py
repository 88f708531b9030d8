"""The payments service: notifies verified, matched and applied exactly once; bad ones
change nothing; expiry through the durable timer; late and double payments kept for refund."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gzsb.adapters.payments import signed, time_text, yuan_text
from gzsb.bootstrap import engine
from gzsb.common.beijing import as_utc
from gzsb.errors import ConflictError, GuardRefused, InvalidInput
from gzsb.extensions import db
from gzsb.models import Application, HistoryEvent, Outbox, Payment, PaymentNotification, PaymentOrder
from gzsb.payments import service as payments
from gzsb.worker.drain import fire_due_timers
from tests import support


def to_verified(who) -> None:
    support.to_verified(engine(), who)


def to_order(who) -> None:
    """Through 【去支付】: the application waits for payment with an open order."""
    to_verified(who)
    engine().fire(who.application_id, "create_order", who.actor, {})


def order_of(who) -> PaymentOrder:
    db.session.expire_all()
    number = support.order_of(who.application_id)["number"]
    return db.session.scalars(select(PaymentOrder).where(PaymentOrder.number == number)).one()


def notify_params(app, order: PaymentOrder, clock, *, trade_no: str = "SBX0001", key: str | None = None, **over: Any):
    params = {
        "notify_id": f"n-{trade_no}",
        "merchant_id": app.config["PAYMENT_MERCHANT_ID"],
        "out_trade_no": order.number,
        "trade_no": trade_no,
        "total_amount": yuan_text(order.amount_fen),
        "currency": "CNY",
        "channel": "alipay",
        "trade_status": "TRADE_SUCCESS",
        "gmt_payment": time_text(clock.now),
    }
    params.update(over)
    return signed(params, key or app.config["PAYMENT_SIGN_KEY"])


def handle(app, clock, params: dict[str, str]) -> payments.NotifyOutcome:
    return payments.handle_notify(app, db.session, engine(), "sandbox", params, clock.now, source="127.0.0.1")


def snapshot(who) -> tuple[Any, ...]:
    db.session.expire_all()
    record = db.session.get(Application, who.application_id)
    count = lambda model, *where: db.session.scalar(select(func.count()).select_from(model).where(*where))  # noqa: E731
    return (
        record.state,
        record.version,
        record.seq,
        record.head,
        count(HistoryEvent),
        count(Outbox),
        count(Payment),
        tuple(db.session.execute(select(PaymentOrder.number, PaymentOrder.status).order_by(PaymentOrder.id))),
    )


def payment_events(who) -> int:
    return db.session.scalar(
        select(func.count()).where(
            HistoryEvent.application_id == who.application_id, HistoryEvent.event == "payment_succeeded"
        )
    )


def sms_rows(who) -> int:
    return db.session.scalar(
        select(func.count()).where(Outbox.application_id == who.application_id, Outbox.kind == "sms")
    )


@pytest.fixture
def ordered(app, make_applicant):
    who = make_applicant()
    to_order(who)
    return who


def test_create_order_keeps_an_order_row_with_the_flow_fee_and_deadline(app, clock, ordered) -> None:
    order = order_of(ordered)
    assert (order.status, order.amount_fen, order.currency) == ("open", 16000, "CNY")
    assert order.application_id == ordered.application_id
    deadline = order.deadline.replace(tzinfo=None)
    assert deadline == (clock.now + timedelta(hours=24)).replace(tzinfo=None)


def test_a_verified_notify_pays_the_order_once(app, clock, ordered) -> None:
    sms_before = sms_rows(ordered)
    order = order_of(ordered)
    params = notify_params(app, order, clock)
    first = handle(app, clock, params)
    assert (first.accepted, first.outcome, first.reply) == (True, "paid", "success")
    record = db.session.get(Application, ordered.application_id)
    assert record.state == "approved"  # a 普通 applicant with a 学籍 match needs no materials
    current = support.order_of(record.id)
    assert current["status"] == "paid" and current["trade_no"] == "SBX0001"
    after = snapshot(ordered)
    # Repeats (the same notify, or a new notify id for the same trade) change nothing.
    for again in (params, notify_params(app, order, clock, notify_id="another")):
        outcome = handle(app, clock, again)
        assert (outcome.accepted, outcome.outcome) == (True, "duplicate")
    assert snapshot(ordered) == after
    assert payment_events(ordered) == 1
    assert sms_rows(ordered) == sms_before + 1
    (payment,) = db.session.scalars(select(Payment)).all()
    assert (payment.status, payment.trade_no, payment.amount_fen) == ("paid", "SBX0001", 16000)
    assert order_of(ordered).status == "paid" and order_of(ordered).trade_no == "SBX0001"
    outcomes = db.session.scalars(select(PaymentNotification.outcome).order_by(PaymentNotification.id)).all()
    assert outcomes == ["paid", "duplicate", "duplicate"]


def test_a_reviewed_category_goes_to_materials(app, clock, make_applicant) -> None:
    who = make_applicant(category="退役士兵")
    to_order(who)
    assert handle(app, clock, notify_params(app, order_of(who), clock)).outcome == "paid"
    assert db.session.get(Application, who.application_id).state == "materials_pending"


BAD = {
    "bad signature": lambda app, order, clock: {**notify_params(app, order, clock), "sign": "0" * 64},
    "wrong key": lambda app, order, clock: notify_params(app, order, clock, key="not-our-key"),
    "wrong amount": lambda app, order, clock: notify_params(app, order, clock, total_amount="0.01"),
    "wrong currency": lambda app, order, clock: notify_params(app, order, clock, currency="USD"),
    "other merchant": lambda app, order, clock: notify_params(app, order, clock, merchant_id="2088999999999999"),
    "unknown order": lambda app, order, clock: notify_params(app, order, clock, out_trade_no="GZSB19990101NOSUCH001"),
    "malformed amount": lambda app, order, clock: notify_params(app, order, clock, total_amount="160.001"),
    "missing trade_no": lambda app, order, clock: signed(
        {k: v for k, v in notify_params(app, order, clock).items() if k not in ("trade_no", "sign")},
        app.config["PAYMENT_SIGN_KEY"],
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_bad_notify_is_refused_changes_nothing_and_is_logged(app, clock, ordered, kind, caplog) -> None:
    before = snapshot(ordered)
    with caplog.at_level(logging.WARNING, logger="gzsb.common.security"):
        outcome = handle(app, clock, BAD[kind](app, order_of(ordered), clock))
    assert (outcome.accepted, outcome.reply) == (False, "fail")
    assert outcome.outcome.startswith("rejected")
    assert snapshot(ordered) == before
    assert [r for r in caplog.records if r.name == "gzsb.common.security" and "refused" in r.getMessage()]


def test_a_notify_that_does_not_say_paid_is_acknowledged_without_change(app, clock, ordered) -> None:
    before = snapshot(ordered)
    outcome = handle(app, clock, notify_params(app, order_of(ordered), clock, trade_status="WAIT_BUYER_PAY"))
    assert (outcome.accepted, outcome.outcome) == (True, "ignored")
    assert snapshot(ordered) == before


def test_unknown_gateway_is_refused(app, clock, ordered, caplog) -> None:
    before = snapshot(ordered)
    with caplog.at_level(logging.WARNING, logger="gzsb.common.security"):
        outcome = payments.handle_notify(
            app, db.session, engine(), "nowhere", notify_params(app, order_of(ordered), clock), clock.now
        )
    assert not outcome.accepted and snapshot(ordered) == before
    assert any("unknown gateway" in r.getMessage() for r in caplog.records)


def test_a_second_trade_for_a_paid_order_is_kept_for_refund(app, clock, ordered) -> None:
    order = order_of(ordered)
    assert handle(app, clock, notify_params(app, order, clock, trade_no="SBX-A")).outcome == "paid"
    state = snapshot(ordered)[:4]
    second = handle(app, clock, notify_params(app, order, clock, trade_no="SBX-B", channel="wechat"))
    assert (second.accepted, second.outcome) == (True, "refund_pending")
    assert snapshot(ordered)[:4] == state  # the application did not move
    statuses = dict(db.session.execute(select(Payment.trade_no, Payment.status)).all())
    assert statuses == {"SBX-A": "paid", "SBX-B": "refund_pending"}
    # Its repeats stay one refund.
    assert handle(app, clock, notify_params(app, order, clock, trade_no="SBX-B")).outcome == "duplicate"
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 2
    assert [p.trade_no for p in payments.refunds(db.session, ordered.application_id)] == ["SBX-B"]


def test_an_unpaid_order_expires_through_the_durable_timer(app, clock, ordered) -> None:
    order = order_of(ordered)
    clock.advance(hours=23, minutes=59)
    assert fire_due_timers(db.session, engine(), clock.now) == 0
    clock.advance(minutes=2)
    assert fire_due_timers(db.session, engine(), clock.now) == 1
    db.session.expire_all()
    record = db.session.get(Application, ordered.application_id)
    assert record.state == "identity_verified" and support.order_of(record.id) == {}
    assert payments.expired_orders(db.session, record.id)[-1]["number"] == order.number
    assert order_of_number(order.number).status == "expired"
    # A new 【去支付】 makes a new order with its own number.
    engine().fire(ordered.application_id, "create_order", ordered.actor, {})
    assert order_of(ordered).number != order.number


def order_of_number(number: str) -> PaymentOrder:
    db.session.expire_all()
    return db.session.scalars(select(PaymentOrder).where(PaymentOrder.number == number)).one()


def test_a_payment_arriving_after_expiry_is_recorded_for_refund(app, clock, ordered) -> None:
    order = order_of(ordered)
    # Paid at the cashier just before the deadline; the notify only arrives after expiry.
    params = notify_params(app, order, clock, gmt_payment=time_text(clock.now + timedelta(hours=23, minutes=58)))
    clock.advance(hours=24, minutes=1)
    assert fire_due_timers(db.session, engine(), clock.now) == 1
    before = snapshot(ordered)
    outcome = handle(app, clock, params)
    assert (outcome.accepted, outcome.outcome) == (True, "refund_pending")
    assert snapshot(ordered)[:5] == before[:5]  # no state change, no history
    # The only side effect: the worker's automatic refund job (no SMS until it is refunded).
    jobs = db.session.scalars(select(Outbox.kind).where(Outbox.id > 0).order_by(Outbox.id.desc())).first()
    assert snapshot(ordered)[5] == before[5] + 1 and jobs == "payment_refund"
    (payment,) = db.session.scalars(select(Payment)).all()
    assert (payment.status, payment.order_number, payment.amount_fen) == ("refund_pending", order.number, 16000)
    assert "过期" in payment.reason or "期限" in payment.reason
    assert handle(app, clock, params).outcome == "duplicate"
    # Finance finds it with `flask payments refunds`.
    listed = app.test_cli_runner().invoke(args=["payments", "refunds"])
    assert listed.exit_code == 0 and f"order {order.number}" in listed.output
    assert "160.00 CNY" in listed.output and listed.output.rstrip().endswith("1 payment(s) to refund")


def test_a_payment_made_after_the_deadline_is_refunded_even_before_the_timer_runs(app, clock, ordered) -> None:
    order = order_of(ordered)
    clock.advance(hours=24, seconds=30)  # the worker's tick has not run yet
    late = notify_params(app, order, clock, gmt_payment=time_text(clock.now))
    assert handle(app, clock, late).outcome == "refund_pending"
    assert db.session.get(Application, ordered.application_id).state == "payment_pending"


def test_a_paid_order_does_not_expire(app, clock, ordered) -> None:
    handle(app, clock, notify_params(app, order_of(ordered), clock))
    clock.advance(hours=30)
    assert fire_due_timers(db.session, engine(), clock.now) == 0
    assert db.session.get(Application, ordered.application_id).state == "approved"


def test_own_order_hides_other_students_orders(app, make_applicant) -> None:
    mine, theirs = make_applicant(), make_applicant()
    to_order(mine)
    to_order(theirs)
    number = order_of(theirs).number
    assert payments.own_order(db.session, theirs.account_id, number).number == number
    with pytest.raises(Exception) as caught:
        payments.own_order(db.session, mine.account_id, number)
    assert getattr(caught.value, "http_status", None) == 404


def test_start_payment_refuses_unknown_channels_and_closed_orders(app, clock, ordered) -> None:
    order = order_of(ordered)
    url = payments.start_payment(app, db.session, order, "unionpay", "http://n", "http://r", clock.now)
    assert url.startswith("/sandbox/gateway?") and "channel=unionpay" in url
    with pytest.raises(InvalidInput):
        payments.start_payment(app, db.session, order, "paypal", "http://n", "http://r", clock.now)
    with pytest.raises(ConflictError, match="not payable"):
        payments.start_payment(app, db.session, order, "alipay", "http://n", "http://r", as_utc(order.deadline))
    handle(app, clock, notify_params(app, order, clock))
    with pytest.raises(ConflictError):
        payments.start_payment(app, db.session, order_of_number(order.number), "alipay", "n", "r", clock.now)


def test_a_step_without_services_fails_with_a_clear_error(app, clock, make_applicant) -> None:
    """Steps reach the database only through the services they are given: an engine built
    without them refuses, whatever the step, and leaves nothing behind."""
    from gzsb.bootstrap import redactor
    from gzsb.errors import ConfigurationError
    from gzsb.store import SqlStore
    from gzsb.workflow.engine import Engine

    who = make_applicant()
    to_verified(who)
    bare = Engine(SqlStore(db.session), redactor=redactor(), clock=clock)
    with pytest.raises(ConfigurationError, match="needs services"):
        bare.fire(who.application_id, "create_order", who.actor, {})
    assert db.session.get(Application, who.application_id).state == "identity_verified"
    assert db.session.scalar(select(func.count()).select_from(PaymentOrder)) == 0


def test_the_order_is_opened_only_inside_the_registration_window(app, clock, make_applicant) -> None:
    who = make_applicant()
    to_verified(who)
    clock.now = clock.now.replace(year=2027, month=1, day=13)  # after windows.registration.closes
    with pytest.raises(GuardRefused) as refused:
        engine().fire(who.application_id, "create_order", who.actor, {})
    assert "报名时间已截止" in str(refused.value.public_message or refused.value)
    assert db.session.scalar(select(func.count()).select_from(PaymentOrder)) == 0

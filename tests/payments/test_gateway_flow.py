"""Issue 15 on the sandbox gateway, through the pages: two tabs cannot pay twice, a double
payment is refunded automatically and shown, expiry closes the gateway's order, and the
daily statement reconciles (clean day, and a day with a lost notify that is then applied)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.adapters import payments as adapters
from gzsb.adapters.payments_sandbox_server import Sandbox
from gzsb.adapters.payments_statement import beijing_day
from gzsb.bootstrap import engine
from gzsb.errors import ConflictError
from gzsb.extensions import db
from gzsb.models import Outbox, Payment, PaymentOrder, SandboxTrade
from gzsb.payments import settle
from gzsb.worker import outbox
from gzsb.worker import tasks as jobs
from gzsb.worker.drain import fire_due_timers
from tests.enrollment.test_views import login
from tests.payments.test_service import order_of, to_order
from tests.payments.test_views import Lossy, queue, state_of, to_cashier, token  # noqa: F401 - fixture

__all__ = ["queue"]


def confirm(client, cashier_path: str):  # type: ignore[no-untyped-def]
    return client.post(f"{cashier_path}/confirm", data={"csrf_token": token(client.get(cashier_path).text)})


def run_jobs(app, clock) -> int:  # type: ignore[no-untyped-def]
    """What the worker's tick does for outbox jobs, on the test clock."""
    return outbox.redispatch(db.session, jobs.enqueue_outbox, clock.now)


def test_two_tabs_pay_once_the_second_channel_closes_the_first(app, clock, make_applicant, queue) -> None:
    who = make_applicant()
    to_order(who)
    tab1, tab2 = app.test_client(), app.test_client()
    login(tab1, who)
    login(tab2, who)
    number = order_of(who).number
    alipay = to_cashier(tab1, number, "alipay")
    wechat = to_cashier(tab2, number, "wechat")  # the alipay trade is closed at the gateway first
    assert "您已发起微信支付" in tab2.get(f"/payment/orders/{number}/pay").text
    paid = confirm(tab2, wechat)
    assert "您已成功支付报名考试费" in tab2.get(paid.location).text and state_of(who) == "approved"
    late = confirm(tab1, alipay)
    assert late.status_code == 409 and "交易已关闭" in late.text  # the cashier takes no second payment
    assert db.session.scalar(select(Payment.id).where(Payment.status != "paid")) is None
    # And the method page refuses a new payment once one is done.
    assert "该订单已支付" in tab1.get(f"/payment/orders/{number}/pay").text


def _at_order(app, make_applicant):  # type: ignore[no-untyped-def]
    """A new student whose application reached its order, logged in on a client."""
    who = make_applicant()
    to_order(who)
    client = app.test_client()
    login(client, who)
    return who, client


def _paid_twice(app, clock, client, number: str) -> Payment:  # type: ignore[no-untyped-def]
    """Both gateway trades of order ``number`` paid (e.g. the close did not reach the gateway
    in time): the second payment, to be refunded."""
    alipay = to_cashier(client, number, "alipay")
    box = Sandbox.of(app, db.session)
    alipay_trade = box.trade(alipay.rsplit("/", 1)[1])
    box.pay(alipay_trade.trade_no)
    jobs.send_sandbox_notify(alipay_trade.trade_no)
    wechat_trade = SandboxTrade(
        trade_no="SBXSECOND0001", merchant_id=alipay_trade.merchant_id, out_trade_no=number, channel="wechat",
        subject="x", amount_fen=alipay_trade.amount_fen, currency="CNY", notify_url=alipay_trade.notify_url,
        return_url=alipay_trade.return_url, expires_at=alipay_trade.expires_at, status="TRADE_SUCCESS",
        paid_at=clock.now,
    )  # fmt: skip
    db.session.add(wechat_trade)
    db.session.commit()
    jobs.send_sandbox_notify("SBXSECOND0001")
    return db.session.scalars(select(Payment).where(Payment.trade_no == "SBXSECOND0001")).one()


def test_a_double_payment_is_refunded_automatically_and_shown(app, clock, make_applicant, queue) -> None:
    who, client = _at_order(app, make_applicant)
    number = order_of(who).number
    second = _paid_twice(app, clock, client, number)
    wechat_trade = db.session.scalars(select(SandboxTrade).where(SandboxTrade.trade_no == second.trade_no)).one()
    assert state_of(who) == "approved"
    assert second.status == "refund_pending"
    page = client.get(f"/payment/orders/{number}/result?channel=wechat").text
    assert "款项将退回" in page and "退款处理中" in page
    sms_before = db.session.query(Outbox).filter(Outbox.kind == "sms").count()
    assert run_jobs(app, clock) >= 1  # the worker refunds through the gateway
    db.session.expire_all()
    second = db.session.get(Payment, second.id)
    assert (second.status, second.refund_status, second.refund_no) == ("refunded", "success", f"RF{second.id:010d}")
    assert db.session.get(SandboxTrade, wechat_trade.id).refunded_fen == second.amount_fen
    sms = db.session.scalars(select(Outbox).where(Outbox.kind == "sms").order_by(Outbox.id.desc())).first()
    assert db.session.query(Outbox).filter(Outbox.kind == "sms").count() == sms_before + 1
    assert sms.payload["template"] == "payment_refunded"
    assert "已退款" in client.get(f"/payment/orders/{number}/result?channel=wechat").text


def test_a_refused_refund_is_listed_and_retried_with_the_same_number(app, clock, make_applicant, queue) -> None:
    who, client = _at_order(app, make_applicant)
    second = _paid_twice(app, clock, client, order_of(who).number)
    trade = db.session.scalars(select(SandboxTrade).where(SandboxTrade.trade_no == second.trade_no)).one()
    trade.status = "WAIT_BUYER_PAY"  # the gateway refuses to refund a trade it does not see as paid
    db.session.commit()
    run_jobs(app, clock)
    db.session.expire_all()
    refused = db.session.get(Payment, second.id)
    assert (refused.status, refused.refund_status) == ("refund_pending", "failed") and refused.refund_error
    runner = app.test_cli_runner()
    listing = runner.invoke(args=["payments", "refunds"])
    assert (
        f"payment {second.id} refund_pending" in listing.output
        and f"refund RF{second.id:010d} refused" in listing.output
    )
    unknown = runner.invoke(args=["payments", "retry-refund", str(second.id + 1000)])
    assert unknown.exit_code != 0 and "does not exist" in unknown.output
    trade = db.session.get(SandboxTrade, trade.id)
    trade.status = "TRADE_SUCCESS"  # the cause is fixed at the gateway
    db.session.commit()
    retried = runner.invoke(args=["payments", "retry-refund", str(second.id)])
    assert retried.exit_code == 0, retried.output
    twice = runner.invoke(args=["payments", "retry-refund", str(second.id)])
    assert twice.exit_code != 0 and "only a refund the gateway refused" in twice.output  # already queued
    assert run_jobs(app, clock) >= 1
    db.session.expire_all()
    done = db.session.get(Payment, second.id)
    assert (done.status, done.refund_status, done.refund_no) == ("refunded", "success", f"RF{second.id:010d}")
    assert db.session.get(SandboxTrade, trade.id).refunded_fen == done.amount_fen


def test_expiry_closes_the_gateway_order(app, clock, make_applicant, queue) -> None:
    who, client = _at_order(app, make_applicant)
    number = order_of(who).number
    cashier = to_cashier(client, number, "alipay")
    clock.advance(hours=24, minutes=1)
    assert fire_due_timers(db.session, engine(), clock.now) == 1
    closing = db.session.scalars(select(Outbox).where(Outbox.kind == "payment_close")).one()
    assert closing.payload == {"order": number, "channel": "alipay"}
    run_jobs(app, clock)
    db.session.expire_all()
    assert db.session.scalars(select(SandboxTrade)).one().status == "TRADE_CLOSED"
    closed = db.session.scalars(select(PaymentOrder).where(PaymentOrder.number == number)).one()
    assert closed.gateway_closed_at is not None
    assert confirm(client, cashier).status_code == 409  # the cashier takes no money any more


def test_reconcile_a_clean_day_and_a_lost_notify(app, clock, make_applicant, queue) -> None:
    day = beijing_day(clock.now).isoformat()
    runner = app.test_cli_runner()
    clean, lost = make_applicant(), make_applicant()
    to_order(clean)
    to_order(lost)
    client = app.test_client()
    login(client, clean)
    confirm(client, to_cashier(client, order_of(clean).number))
    clean_day = runner.invoke(args=["payments", "reconcile", "--date", day])
    assert clean_day.exit_code == 0 and "0 difference(s)" in clean_day.output
    # The second student's notify never arrives and nobody looks at the result page.
    adapters.TRANSPORTS["lossy"] = Lossy
    app.config["PAYMENT_SANDBOX_TRANSPORT"] = "lossy"
    try:
        other = app.test_client()
        login(other, lost)
        confirm(other, to_cashier(other, order_of(lost).number))
    finally:
        app.config["PAYMENT_SANDBOX_TRANSPORT"] = "wsgi"
        del adapters.TRANSPORTS["lossy"]
    assert state_of(lost) == "payment_pending"
    dirty = runner.invoke(args=["payments", "reconcile", "--date", day])
    assert dirty.exit_code == 1 and "missing_here" in dirty.output and order_of(lost).number in dirty.output
    applied = runner.invoke(args=["payments", "reconcile", "--date", day, "--apply"])
    assert applied.exit_code == 0 and state_of(lost) == "approved"
    after = runner.invoke(args=["payments", "reconcile", "--date", day])
    assert after.exit_code == 0 and "0 difference(s)" in after.output


def test_two_tabs_starting_at_the_same_moment_one_is_refused(app, clock, make_applicant, queue) -> None:
    who = make_applicant()
    to_order(who)
    order = order_of(who)
    urls = ("http://localhost/payment/notify/sandbox", "http://localhost/back")
    other_tab = Session(db.engine)  # read the order before either tab started its payment
    try:
        stale = other_tab.get(PaymentOrder, order.id)
        assert stale is not None and stale.started_channel == ""
        settle.begin(app, db.session, engine(), order, "alipay", urls, clock.now)
        with pytest.raises(ConflictError) as refused:
            settle.begin(app, other_tab, engine(), stale, "wechat", urls, clock.now)
        assert "另一个页面" in refused.value.public_message
    finally:
        other_tab.close()
    db.session.expire_all()
    assert order_of(who).started_channel == "alipay"


def test_a_second_payment_without_its_notify_is_found_by_the_result_page(app, clock, make_applicant, queue) -> None:
    who, client = _at_order(app, make_applicant)
    number = order_of(who).number
    first = Sandbox.of(app, db.session).pay(to_cashier(client, number, "alipay").rsplit("/", 1)[1])
    jobs.send_sandbox_notify(first.trade_no)
    assert state_of(who) == "approved"
    db.session.add(
        SandboxTrade(
            trade_no="SBXSECOND0002", merchant_id=first.merchant_id, out_trade_no=number, channel="wechat",
            subject="x", amount_fen=first.amount_fen, currency="CNY", notify_url=first.notify_url,
            return_url=first.return_url, expires_at=first.expires_at, status="TRADE_SUCCESS", paid_at=clock.now,
        )
    )  # fmt: skip
    db.session.commit()  # paid at the gateway; its notify has not come
    page = client.get(f"/payment/orders/{number}/result?channel=wechat").text
    assert "款项将退回" in page and "退款处理中" in page
    second = db.session.scalars(select(Payment).where(Payment.trade_no == "SBXSECOND0002")).one()
    assert second.status == "refund_pending"
    assert db.session.scalars(select(Outbox.kind).order_by(Outbox.id.desc())).first() == "payment_refund"

"""网上支付 in a real browser (issue 15): two tabs cannot pay twice, and a result page whose
notify was lost turns 支付成功 by itself (it polls our server; the worker asks the gateway),
without anyone pressing 刷新."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from gzsb.adapters import payments as adapters
from gzsb.bootstrap import engine
from gzsb.cli.demo import DEMO_PASSWORD, demo_student
from gzsb.extensions import db
from gzsb.worker import outbox
from gzsb.worker import tasks as jobs
from tests.e2e.support import LiveServer, Screen, log_in
from tests.payments.test_views import Down
from tests.support import new_applicant, order_of, to_payment

pytestmark = pytest.mark.browser

INDEX = {"desktop": 171, "phone": 172}


@pytest.fixture
def queue(live_server: LiveServer) -> Iterator[None]:
    """Background jobs run in process, on the live app (as the tick would run them)."""
    previous, previous_app = jobs.huey.immediate, jobs._flask_app
    jobs.huey.immediate = True
    jobs.use_app(live_server.app)
    try:
        yield
    finally:
        jobs.huey.immediate = previous
        jobs.use_app(previous_app)


def ordered_student(live_server: LiveServer, index: int) -> tuple[str, str]:
    """A student at 订单详情: (mobile, order number)."""
    with live_server.app.app_context():
        who = new_applicant(index)
        to_payment(engine(), who)
        number = order_of(who.application_id)["number"]
        db.session.remove()
    return demo_student(index).mobile, number


def choose(page, number: str, channel: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"/payment/orders/{number}/pay")
    page.get_by_text(channel, exact=True).click()
    page.get_by_role("button", name="确认支付").click()
    page.wait_for_url("**/sandbox/cashier/**")


def test_two_tabs_cannot_pay_twice(screen: Screen, live_server: LiveServer, queue) -> None:
    mobile, number = ordered_student(live_server, INDEX[screen.viewport] + 10)
    log_in(screen, mobile, DEMO_PASSWORD)
    tab1 = screen.page
    tab2 = tab1.context.new_page()
    choose(tab1, number, "支付宝")
    choose(tab2, number, "微信支付")  # closes the 支付宝 order at the gateway first
    tab2.get_by_role("button", name="确认支付").click()
    expect(tab2.locator("h1")).to_have_text("支付成功")
    expect(tab2.locator(".ok")).to_contain_text("您已成功支付报名考试费 ¥160.00")
    tab1.get_by_role("button", name="确认支付").click()
    expect(tab1.locator("body")).to_contain_text("交易已关闭")
    screen.shot("payment-two-tabs")
    tab1.goto(f"/payment/orders/{number}/pay")
    expect(tab1.locator("[role=alert]")).to_contain_text("该订单已支付")


def test_lost_notify_the_result_page_turns_paid_by_itself(screen: Screen, live_server: LiveServer, queue) -> None:
    app = live_server.app
    mobile, number = ordered_student(live_server, INDEX[screen.viewport])
    adapters.TRANSPORTS["down"] = Down
    app.config.update(PAYMENT_SANDBOX_TRANSPORT="down", PAYMENT_SANDBOX_URL=live_server.url, PAYMENT_POLL_MS=500)
    Down.up = False  # notifies lost, and the gateway's query API unreachable for now
    try:
        log_in(screen, mobile, DEMO_PASSWORD)
        page = screen.page
        choose(page, number, "支付宝")
        page.get_by_role("button", name="确认支付").click()
        expect(page.locator("h1")).to_have_text("支付处理中")
        expect(page.get_by_role("button", name="我已支付，刷新状态")).to_be_visible()
        screen.shot("payment-processing")
        Down.up = True
        # The worker's check, due within the recheck time, asks the gateway.
        with app.app_context():
            later = live_server.clock.now + timedelta(seconds=app.config["PAYMENT_RECHECK_SECONDS"])
            assert outbox.redispatch(db.session, jobs.enqueue_outbox, later) >= 1
            db.session.remove()
        expect(page.locator("h1")).to_have_text("支付成功", timeout=10_000)  # nobody pressed anything
        screen.shot("payment-paid-by-itself")
    finally:
        app.config.update(PAYMENT_SANDBOX_TRANSPORT="wsgi", PAYMENT_SANDBOX_URL="", PAYMENT_POLL_MS=2000)
        del adapters.TRANSPORTS["down"]

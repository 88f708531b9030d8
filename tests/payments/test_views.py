"""网上支付 in the browser: 【去支付】 → 订单详情 → 【立即支付】 → 支付方式 → the sandbox
cashier → the result page, the notify endpoint, and nobody sees another student's order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from gzsb.adapters import payments as adapters
from gzsb.adapters.payments import WsgiTransport, signed, time_text, yuan_text
from gzsb.extensions import db
from gzsb.models import Application, HistoryEvent, PaymentOrder, SandboxTrade
from gzsb.worker import outbox
from gzsb.worker import tasks as jobs
from tests.enrollment.test_views import TOKEN, login
from tests.payments.test_service import to_order, to_verified
from tests.support import order_of


@pytest.fixture
def queue(app) -> Iterator[object]:
    """The Huey queue in immediate mode on this app: the notify is sent when the payer
    confirms; retries and repeats wait in its in-memory schedule."""
    previous, previous_app = jobs.huey.immediate, jobs._flask_app
    jobs.huey.immediate = True
    jobs.use_app(app)
    try:
        yield jobs.huey
    finally:
        jobs.huey.immediate = previous
        jobs.use_app(previous_app)


def run_scheduled(queue) -> None:
    """Run whatever the queue holds for later, as the consumer would when its time comes."""
    later = datetime(2100, 1, 1)  # Huey's schedule is in naive UTC
    for task in queue.read_schedule(later):
        queue.execute(task, timestamp=later)


def state_of(who) -> str:
    db.session.expire_all()
    return db.session.get(Application, who.application_id).state


def order_number(who) -> str:
    db.session.expire_all()
    return order_of(who.application_id)["number"]


def token(html: str) -> str:
    match = TOKEN.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def to_cashier(client, number: str, channel: str = "alipay") -> str:
    """Choose a channel; follow the gateway redirect to the cashier page. Returns its path."""
    page = client.get(f"/payment/orders/{number}/pay")
    response = client.post(f"/payment/orders/{number}/pay", data={"channel": channel, "csrf_token": token(page.text)})
    assert response.status_code == 303
    assert urlsplit(response.location).path == "/sandbox/gateway"
    entry = client.get(response.location)
    assert entry.status_code == 303
    cashier = urlsplit(entry.location).path
    assert cashier.startswith("/sandbox/cashier/")
    return cashier


def test_the_whole_payment_journey(app, clock, make_applicant, queue) -> None:
    who = make_applicant()
    to_verified(who)
    client = app.test_client()
    login(client, who)

    page = client.get("/application").text
    assert "报名考试费" in page and "¥160.00" in page and "去支付" in page
    moved = client.post(
        "/application/events/create_order",
        data={"csrf_token": token(page), "version": db.session.get(Application, who.application_id).version},
    )
    assert moved.status_code == 302 and state_of(who) == "payment_pending"

    number = order_number(who)
    detail = client.get("/application").text
    for text in ("订单详情", number, "¥160.00", "支付截止", "立即支付", "报名考试费"):
        assert text in detail, text
    assert "2026年12月02日 10:00" in detail  # 24 h after ordering, in Beijing time
    assert f"/payment/orders/{number}/pay" in detail

    channels = client.get(f"/payment/orders/{number}/pay").text
    for name in ("支付宝", "微信支付", "银联", "确认支付"):
        assert name in channels

    cashier_path = to_cashier(client, number, "wechat")
    cashier = client.get(cashier_path).text
    for text in ("¥160.00", "天津市教育招生考试院", "微信支付", number, "确认支付", "取消"):
        assert text in cashier, text
    assert state_of(who) == "payment_pending"  # nothing is paid by opening the cashier

    confirmed = client.post(f"{cashier_path}/confirm", data={"csrf_token": token(cashier)})
    assert confirmed.status_code == 303
    back = urlsplit(confirmed.location)
    assert back.path == f"/payment/orders/{number}/result"
    # The signed notify went out asynchronously and was answered `success`.
    assert state_of(who) == "approved"
    trade = db.session.scalars(select(SandboxTrade)).one()
    assert trade.notify_acked_at is not None and trade.last_notify_result.startswith("HTTP 200")

    result = client.get(f"{back.path}?{back.query}").text
    assert "支付成功" in result and number in result and "返回流程页面" in result

    # The gateway's later repeat of the notify (in the queue's schedule) changes nothing.
    history = db.session.scalar(select(func.count()).select_from(HistoryEvent))
    scheduled = queue.scheduled()
    assert len(scheduled) == 1
    run_scheduled(queue)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(HistoryEvent)) == history
    assert db.session.scalars(select(SandboxTrade)).one().notify_attempts == 2


class Lossy:
    """The network loses every notify (gateway → us); queries still get through."""

    def __init__(self, app) -> None:
        self.inner = WsgiTransport(app)

    def post(self, url, data, timeout):
        if "/payment/notify/" in url:
            raise ConnectionError("notify lost")
        return self.inner.post(url, data, timeout)


class Down(Lossy):
    """Notifies lost, and the gateway's query API unreachable too (until ``up``)."""

    up = False

    def post(self, url, data, timeout):
        if "/sandbox/api/" in url and not Down.up:
            raise ConnectionError("gateway unreachable")
        return super().post(url, data, timeout)


def test_lost_notify_the_query_on_return_pays_the_order(app, clock, make_applicant, queue) -> None:
    who = make_applicant()
    to_order(who)
    client = app.test_client()
    login(client, who)
    number = order_number(who)
    adapters.TRANSPORTS["lossy"] = Lossy
    app.config["PAYMENT_SANDBOX_TRANSPORT"] = "lossy"
    try:
        cashier_path = to_cashier(client, number)
        confirmed = client.post(f"{cashier_path}/confirm", data={"csrf_token": token(client.get(cashier_path).text)})
        assert state_of(who) == "payment_pending"  # no notify came
        page = client.get(confirmed.location).text  # the signed query answer is as good as one
        assert "支付成功" in page and state_of(who) == "approved"
    finally:
        app.config["PAYMENT_SANDBOX_TRANSPORT"] = "wsgi"
        del adapters.TRANSPORTS["lossy"]


def test_lost_notify_the_worker_asks_and_the_polled_page_turns_paid(app, clock, make_applicant, queue) -> None:
    who = make_applicant()
    to_order(who)
    client = app.test_client()
    login(client, who)
    number = order_number(who)
    adapters.TRANSPORTS["down"] = Down
    app.config["PAYMENT_SANDBOX_TRANSPORT"] = "down"
    app.config["PAYMENT_SANDBOX_URL"] = "http://localhost"  # queries travel by the transport too
    Down.up = True
    try:
        cashier_path = to_cashier(client, number)
        confirmed = client.post(f"{cashier_path}/confirm", data={"csrf_token": token(client.get(cashier_path).text)})
        Down.up = False
        page = client.get(confirmed.location).text
        assert "支付处理中" in page and "我已支付，刷新状态" in page and "data-poll-url" in page
        poll = re.search(r'data-poll-url="([^"]+)"', page).group(1).replace("&amp;", "&")
        assert client.get(poll).json["status"] == "processing" or client.get(poll).json["status"] == "unpaid"
        Down.up = True
        # The worker's check job (queued by 确认支付's page) runs within the recheck time.
        clock.advance(seconds=app.config["PAYMENT_RECHECK_SECONDS"])
        assert outbox.redispatch(db.session, jobs.enqueue_outbox, clock.now) >= 1
        assert state_of(who) == "approved"
        assert client.get(poll).json["status"] == "paid"  # the page reloads itself on this
    finally:
        app.config["PAYMENT_SANDBOX_TRANSPORT"] = "wsgi"
        app.config["PAYMENT_SANDBOX_URL"] = ""
        del adapters.TRANSPORTS["down"]


def test_cancel_at_the_cashier_shows_not_paid_with_a_way_back(app, make_applicant, queue) -> None:
    who = make_applicant()
    to_order(who)
    client = app.test_client()
    login(client, who)
    number = order_number(who)
    cashier_path = to_cashier(client, number, "unionpay")
    cancelled = client.post(f"{cashier_path}/cancel", data={"csrf_token": token(client.get(cashier_path).text)})
    assert cancelled.status_code == 303
    page = client.get(cancelled.location).text
    assert "支付未完成" in page and "重新支付" in page and "返回流程页面" in page
    assert state_of(who) == "payment_pending"


def test_a_student_cannot_see_or_pay_another_students_order(app, make_applicant, queue) -> None:
    mine, theirs = make_applicant(), make_applicant()
    to_order(mine)
    to_order(theirs)
    client = app.test_client()
    login(client, mine)
    other = order_number(theirs)
    own_page = client.get(f"/payment/orders/{order_number(mine)}/pay")
    assert own_page.status_code == 200
    assert client.get(f"/payment/orders/{other}/pay").status_code == 404
    posted = client.post(f"/payment/orders/{other}/pay", data={"channel": "alipay", "csrf_token": token(own_page.text)})
    assert posted.status_code == 404
    assert client.get(f"/payment/orders/{other}/result").status_code == 404
    assert other not in client.get("/application").text
    assert db.session.scalar(select(func.count()).select_from(SandboxTrade)) == 0


def test_payment_pages_need_a_login(app, make_applicant) -> None:
    who = make_applicant()
    to_order(who)
    response = app.test_client().get(f"/payment/orders/{order_number(who)}/pay")
    assert response.status_code == 302 and "/login" in response.location


def test_an_expired_order_cannot_be_paid_and_says_why(app, clock, make_applicant) -> None:
    who = make_applicant()
    to_order(who)
    client = app.test_client()
    login(client, who)
    number = order_number(who)
    clock.advance(hours=25)
    page = client.get(f"/payment/orders/{number}/pay")
    assert "超过支付期限" in page.text and "确认支付" not in page.text
    response = client.post(f"/payment/orders/{number}/pay", data={"channel": "alipay", "csrf_token": token(page.text)})
    assert response.status_code == 409


def notify_form(app, order: PaymentOrder, clock, **over) -> dict[str, str]:
    params = {
        "notify_id": "n1",
        "merchant_id": app.config["PAYMENT_MERCHANT_ID"],
        "out_trade_no": order.number,
        "trade_no": "SBX-VIEW-1",
        "total_amount": yuan_text(order.amount_fen),
        "currency": "CNY",
        "channel": "alipay",
        "trade_status": "TRADE_SUCCESS",
        "gmt_payment": time_text(clock.now),
    }
    params.update(over)
    return signed(params, app.config["PAYMENT_SIGN_KEY"])


def test_notify_endpoint_needs_no_csrf_and_answers_like_a_gateway(app, clock, make_applicant) -> None:
    who = make_applicant()
    to_order(who)
    order = db.session.scalars(select(PaymentOrder)).one()
    client = app.test_client()
    bad = client.post("/payment/notify/sandbox", data={**notify_form(app, order, clock), "sign": "F" * 64})
    assert (bad.status_code, bad.text, bad.mimetype) == (400, "fail", "text/plain")
    assert state_of(who) == "payment_pending"
    good = client.post("/payment/notify/sandbox", data=notify_form(app, order, clock))
    assert (good.status_code, good.text) == (200, "success")
    assert state_of(who) == "approved"
    again = client.post("/payment/notify/sandbox", data=notify_form(app, order, clock, notify_id="n2"))
    assert (again.status_code, again.text) == (200, "success")
    assert client.post("/payment/notify/paypal", data=notify_form(app, order, clock)).status_code == 400


def test_sandbox_gateway_refuses_a_tampered_redirect(app, make_applicant) -> None:
    who = make_applicant()
    to_order(who)
    client = app.test_client()
    login(client, who)
    number = order_number(who)
    page = client.get(f"/payment/orders/{number}/pay")
    response = client.post(f"/payment/orders/{number}/pay", data={"channel": "alipay", "csrf_token": token(page.text)})
    tampered = re.sub(r"total_amount=[0-9.]+", "total_amount=0.01", response.location)
    refused = client.get(tampered)
    assert refused.status_code == 400 and "签名验证失败" in refused.text
    assert db.session.scalar(select(func.count()).select_from(SandboxTrade)) == 0


def test_the_sandbox_does_not_exist_when_real_gateways_serve_every_channel(app, clock, make_applicant) -> None:
    who = make_applicant()
    to_order(who)
    configured = app.config["PAYMENT_CHANNELS"]
    app.config["PAYMENT_CHANNELS"] = {"alipay": "alipay-real"}
    try:
        assert app.test_client().get("/sandbox/cashier/SBX1").status_code == 404
        order = db.session.scalars(select(PaymentOrder)).one()
        refused = app.test_client().post("/payment/notify/sandbox", data=notify_form(app, order, clock))
        assert refused.status_code == 400 and state_of(who) == "payment_pending"
    finally:
        app.config["PAYMENT_CHANNELS"] = configured


def test_the_sandbox_posts_its_notify_over_real_http(app, make_applicant, queue) -> None:
    """HttpTransport against the app served on a loopback port (what `make run` does)."""
    from tests.integration.test_pg_payments import live_server

    who = make_applicant()
    to_order(who)
    client = app.test_client()
    login(client, who)
    with live_server(app) as base:
        app.config.update(PAYMENT_SANDBOX_TRANSPORT="http", PAYMENT_NOTIFY_BASE_URL=base)
        try:
            cashier_path = to_cashier(client, order_number(who))
            client.post(f"{cashier_path}/confirm", data={"csrf_token": token(client.get(cashier_path).text)})
        finally:
            app.config.update(PAYMENT_SANDBOX_TRANSPORT="wsgi", PAYMENT_NOTIFY_BASE_URL="http://localhost")
    trade = db.session.scalars(select(SandboxTrade)).one()
    assert trade.notify_url == f"{base}/payment/notify/sandbox"
    assert trade.last_notify_result == "HTTP 200: success"
    assert state_of(who) == "approved"

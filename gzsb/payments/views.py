"""网上支付 pages and the gateway endpoints; the sandbox gateway's own pages under /sandbox.

Students: 订单详情 is the ``payment_pending`` state page (pages/order.html); 【立即支付】 leads
to the channel choice here, which sends the browser to the gateway's cashier; the gateway
sends it back to the result page. Gateways: the notify endpoint (no CSRF: it is signed, and
answers in the gateway's plain-text words).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request, url_for

from gzsb.accounts.session import current_account, login_required
from gzsb.adapters.payments import gateway, yuan_text
from gzsb.adapters.payments_sandbox_server import CHANNEL_NAMES, Sandbox
from gzsb.bootstrap import engine
from gzsb.common.beijing import beijing_text
from gzsb.errors import NotFound
from gzsb.extensions import csrf, db
from gzsb.models import Application, Payment
from gzsb.payments import service as payments
from gzsb.payments import settle
from gzsb.worker import tasks as jobs

bp = Blueprint("payments", __name__)
sandbox = Blueprint("sandbox", __name__, url_prefix="/sandbox")


@bp.record_once
def gateways_configured(state: Any) -> None:
    """Build every configured gateway at start-up: a missing key file or setting of a real
    gateway stops the app here, not at a student's first payment."""
    for name in sorted(payments.configured_gateways(state.app.config)):
        gateway(name, state.app)


def _now() -> Any:
    return current_app.extensions["gzsb.clock"]()


def _my_order(number: str) -> Any:
    account = current_account()
    assert account is not None  # guarded by login_required
    return payments.own_order(db.session, account.id, number)


@bp.app_template_filter("yuan")
def yuan(fen: int | None) -> str:
    return f"¥{yuan_text(int(fen or 0))}"


@bp.app_template_filter("pay_time")
def pay_time(value: Any) -> str:
    """A stored moment (datetime or ISO text) in Beijing time, to the minute."""
    if not value:
        return ""
    return beijing_text(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


@bp.app_template_global("current_order")
def current_order(app: Application) -> dict[str, Any]:
    return payments.current_order(db.session, app.id)


@bp.app_template_global("expired_orders")
def expired_orders(app: Application) -> list[dict[str, Any]]:
    return payments.expired_orders(db.session, app.id)


@bp.app_template_global("payment_refunds")
def payment_refunds(app: Application) -> list[Payment]:
    return payments.refunds(db.session, app.id)


@bp.get("/payment/orders/<number>/pay")
@login_required("student")
def choose_channel(number: str) -> Any:
    order = _my_order(number)
    blocked = payments.payable(db.session, order, _now())
    return render_template(
        "payments/channels.html",
        order=order,
        channels=payments.channels(current_app.config),
        blocked=blocked,
        in_flight=payments.CHANNELS.get(order.started_channel, ""),
    )


@bp.post("/payment/orders/<number>/pay")
@login_required("student")
def pay(number: str) -> Any:
    order = _my_order(number)
    channel = request.form.get("channel", "")
    config = current_app.config
    gateway_name = config["PAYMENT_CHANNELS"].get(channel, "")
    notify_url = config["PAYMENT_NOTIFY_BASE_URL"].rstrip("/") + url_for("payments.notify", gateway=gateway_name)
    return_url = url_for("payments.result", number=order.number, channel=channel, _external=True)
    urls = (notify_url, return_url)
    url = settle.begin(current_app, db.session, engine(), order, channel, urls, _now(), request.remote_addr or "")
    # No notify within the recheck time: the worker asks the gateway itself.
    item = settle.add_check(db.session, order, channel)
    jobs.schedule_payment_job(item.id, config["PAYMENT_RECHECK_SECONDS"])
    return redirect(url, code=303)


@bp.get("/payment/orders/<number>/result")
@login_required("student")
def result(number: str) -> Any:
    order = _my_order(number)
    channel = request.args.get("channel", "")
    outcome = settle.result(current_app, db.session, engine(), order, channel, _now())
    return render_template(
        "payments/result.html",
        result=outcome,
        order=order,
        channel=channel,
        payments_of_order=payments.payments_of(db.session, order.number),
        poll_ms=current_app.config["PAYMENT_POLL_MS"],
    )


@bp.post("/payment/orders/<number>/refresh")
@login_required("student")
def refresh(number: str) -> Any:
    """【我已支付，刷新状态】: ask the gateway now, then show the result."""
    order = _my_order(number)
    channel = request.form.get("channel", "")
    return redirect(url_for("payments.result", number=order.number, channel=channel), code=303)


@bp.get("/api/payment/orders/<number>/status")
@login_required("student")
def status(number: str) -> Any:
    """What the result page polls: our own records only (cheap; the worker asks the gateway)."""
    order = _my_order(number)
    outcome = payments.local_result(db.session, order, request.args.get("channel", ""))
    return jsonify({"status": outcome.status, "order": order.number})


@bp.post("/payment/notify/<gateway>")
@csrf.exempt
def notify(gateway: str) -> Any:
    outcome = payments.handle_notify(
        current_app,
        db.session,
        engine(),
        gateway,
        request.form.to_dict(),
        _now(),
        source=request.remote_addr or "",
        headers=dict(request.headers),
        body=request.get_data(as_text=True, cache=True),
    )
    mimetype = "application/json" if outcome.reply.startswith("{") else "text/plain"
    return Response(outcome.reply, status=200 if outcome.accepted else 400, mimetype=mimetype)


# -- the sandbox gateway's own pages (on a real gateway: its servers) ---------------------------


def _sandbox() -> Sandbox:
    return Sandbox.of(current_app, db.session)


@sandbox.before_request
def sandbox_only_when_configured() -> None:
    # With real gateways configured, the built-in one must not exist for anyone.
    if "sandbox" not in payments.configured_gateways(current_app.config):
        raise NotFound("the sandbox gateway is not configured", public="页面不存在")


@sandbox.get("/gateway")
def gateway_entry() -> Any:
    trade = _sandbox().open_trade(request.args.to_dict())
    return redirect(url_for("payments.sandbox.cashier", trade_no=trade.trade_no), code=303)


@sandbox.get("/cashier/<trade_no>")
def cashier(trade_no: str) -> Any:
    box = _sandbox()
    trade = box.trade(trade_no)
    return render_template(
        "payments/cashier.html",
        trade=trade,
        merchant=box.merchant_name(trade),
        channel_name=CHANNEL_NAMES.get(trade.channel, trade.channel),
        expired=box.is_expired(trade),
    )


@sandbox.post("/cashier/<trade_no>/confirm")
def cashier_confirm(trade_no: str) -> Any:
    box = _sandbox()
    trade = box.pay(trade_no)
    # Committed by pay(): the notify goes out asynchronously (through the outbox), like a real gateway's.
    jobs.send_sandbox_notify(trade.trade_no)
    return redirect(box.return_url(trade), code=303)


@sandbox.post("/cashier/<trade_no>/cancel")
def cashier_cancel(trade_no: str) -> Any:
    box = _sandbox()
    return redirect(box.return_url(box.trade(trade_no)), code=303)


@sandbox.post("/api/query")
@csrf.exempt
def api_query() -> Any:
    return jsonify(_sandbox().query(request.form.to_dict()))


@sandbox.post("/api/close")
@csrf.exempt
def api_close() -> Any:
    return jsonify(_sandbox().close(request.form.to_dict()))


@sandbox.post("/api/refund")
@csrf.exempt
def api_refund() -> Any:
    return jsonify(_sandbox().refund(request.form.to_dict()))


@sandbox.post("/api/statement")
@csrf.exempt
def api_statement() -> Any:
    return jsonify(_sandbox().statement(request.form.to_dict()))


bp.register_blueprint(sandbox)

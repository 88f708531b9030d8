"""The thin state/event layer: load the application, call the engine, render."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.accounts.session import account_loader, current_account, login_required
from gzsb.bootstrap import engine
from gzsb.enrollment import journey
from gzsb.enrollment.journey import Facts, StageRow
from gzsb.enrollment.names import REGISTRATION
from gzsb.enrollment.service import AccountPage, account_page, latest_correction
from gzsb.errors import EventNotAvailable, GuardRefused, InvalidInput
from gzsb.extensions import db
from gzsb.identity.names import OWN_ROUTE_EVENTS
from gzsb.models import Account, Application, HistoryEvent, RegistrationForm
from gzsb.payments import orders
from gzsb.payments.names import ORDER_OPEN
from gzsb.store import FLOWS, start_application
from gzsb.workflow.engine import Actor
from gzsb.workflow.spec import FlowSpec

bp = Blueprint("enrollment", __name__)


@bp.app_template_global("correction_report")
def correction_report(app: Application) -> dict[str, Any]:
    """The latest 信息有误 correction request of ``app`` (its one record is the request row)."""
    return latest_correction(db.session, app.id)


def current_actor() -> Actor:
    account = current_account()
    assert account is not None  # guarded by login_required
    return Actor(f"account:{account.id}", account.role)


def _page_loader(journey: bool) -> Callable[[Session, int], Account | None]:
    def load(session: Session, account_id: int) -> Account | None:
        g.account_page = account_page(session, account_id, journey=journey)
        return g.account_page.account if g.account_page is not None else None

    return load


# On a student page: the log-in gate's one query also brings the application, its visited
# states and the 报名表's download time (``own_application`` and ``journey_facts`` use them);
# ``with_application_only`` (status polls, POSTs) brings the application alone.
with_application = account_loader(_page_loader(journey=True))
with_application_only = account_loader(_page_loader(journey=False))


def _page_of(account: Account) -> AccountPage | None:
    page: AccountPage | None = g.get("account_page")
    return page if page is not None and page.account is account else None


def own_application() -> Application:
    """The logged-in student's application, started on the published flow at first visit."""
    account = current_account()
    assert account is not None
    page = _page_of(account)
    if page is not None and page.application is not None:
        return page.application
    app = db.session.scalars(select(Application).where(Application.account_id == account.id)).first()
    if app is None:
        app = start_application(db.session, account.id, current_app.config["FLOW_NAME"])
    return app


def flow_of(app: Application) -> FlowSpec:
    return FLOWS.by_version(db.session, app.flow_version_id)


def journey_facts(app: Application, flow: FlowSpec, page: AccountPage | None = None) -> Facts:
    """What the 流程页面 needs beyond the application row: the states visited and whether
    the 报名表 was downloaded (unless ``page`` brought them with the account), the
    registration window and the open order's deadline."""
    if page is not None and page.journey and page.application is app:
        visited, downloaded = page.visited, page.downloaded_at
    else:
        visited = frozenset(
            db.session.scalars(select(HistoryEvent.to_state).where(HistoryEvent.application_id == app.id))
        )
        downloaded = db.session.scalar(
            select(RegistrationForm.downloaded_at).where(RegistrationForm.application_id == app.id)
        )
    order = orders.current(db.session, app.id) if app.state == ORDER_OPEN else None
    xueji = (app.data or {}).get("xueji") or {}
    return Facts(
        visited=visited,
        finished=downloaded is not None,
        now=current_app.extensions["gzsb.clock"](),
        window=flow.windows.get(REGISTRATION),
        order_deadline=order.deadline if order is not None and order.status == "open" else None,
        decided=bool(xueji.get("status")),
    )


def stage_rows(app: Application, flow: FlowSpec) -> list[StageRow]:
    """The stage bar: every stage done / current (or waiting) / to do / not needed."""
    account = current_account()
    page = _page_of(account) if account is not None else None
    return journey.stage_rows(flow, app.state, app.data or {}, journey_facts(app, flow, page))


# Dotted form keys (choices.0.major) nest at most this deep; deeper ones are refused.
FORM_KEY_DEPTH = 4


def form_payload(form: Any) -> dict[str, Any]:
    """``choices.0.major=…`` → {"choices": [{"major": …}]}; the step's schema does the rest."""
    payload: dict[str, Any] = {}
    for key in form:
        if key in {"csrf_token", "version"}:
            continue
        values = form.getlist(key)
        value: Any = values if key.endswith("[]") else values[-1]
        parts = key.removesuffix("[]").split(".")
        if len(parts) > FORM_KEY_DEPTH or any(len(part) > 40 for part in parts):
            raise InvalidInput(f"form key too deep or long: {key[:60]!r}", {"_schema": ["提交的内容有误"]})
        node: Any = payload
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # "a=1" and "a.b=2" in one form
                raise InvalidInput(f"form key clashes: {key[:60]!r}", {"_schema": ["提交的内容有误"]})
        node[parts[-1]] = value
    return _lists(payload)


def _lists(node: Any) -> Any:
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            items = [_lists(node[k]) for k in sorted(node, key=int)]
            # Empty rows of optional 志愿 are not choices.
            return [i for i in items if not (isinstance(i, dict) and not any(i.values()))]
        return {k: _lists(v) for k, v in node.items()}
    return node


def render_state(app: Application, *, errors: Any = None, values: Any = None, status: int = 200) -> Any:
    flow = flow_of(app)
    state = flow.states[app.state]
    options = engine().options(app, current_actor())
    return (
        render_template(
            f"pages/{state.page}.html",
            app=app,
            flow=flow,
            state=state,
            options=options,
            stages=stage_rows(app, flow),
            errors=errors or {},
            values=values or {},
        ),
        status,
    )


@bp.get("/")
def home() -> Any:
    return render_template("home.html", account=current_account())


@bp.get("/process")
@login_required("student")
@with_application
def process() -> Any:
    account = current_account()
    assert account is not None
    app = own_application()
    flow = flow_of(app)
    options = engine().options(app, current_actor())
    view = journey.journey(flow, app.state, app.data or {}, options, journey_facts(app, flow, _page_of(account)))
    return render_template("process.html", app=app, flow=flow, journey=view, stages=view.rows, options=options)


@bp.get("/application")
@login_required("student")
@with_application
def application() -> Any:
    return render_state(own_application())


def refuse_own_route_event(app: Application, event: str) -> None:
    """Events with a route of their own (photo checks first) are not fired from here."""
    if event in OWN_ROUTE_EVENTS:
        raise EventNotAvailable(f"application {app.uid}: {event!r} is fired only by its own upload route")


@bp.post("/application/events/<event>")
@login_required("student")
@with_application_only
def fire(event: str) -> Any:
    app = own_application()
    refuse_own_route_event(app, event)
    payload = form_payload(request.form)
    version = request.form.get("version", type=int)
    try:
        engine().fire(app.id, event, current_actor(), payload, expected_version=version)
    except (InvalidInput, GuardRefused) as exc:
        return render_state(db.session.get(Application, app.id), errors=exc.form_errors, values=payload, status=422)
    return redirect(url_for("enrollment.application"))

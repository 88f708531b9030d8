"""现场确认 pages: the student's appointment (/application/onsite), the day's appointments of
a 确认点 for its staff (/staff/onsite), and the slots an admin opens (/admin/points/<id>/slots).

Booking and cancelling are engine events (history); the views only collect the form.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from itertools import groupby
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from gzsb.accounts.session import current_account, login_required
from gzsb.admin import service as admin
from gzsb.bootstrap import engine
from gzsb.common.beijing import BEIJING, as_utc
from gzsb.common.templates import template_globals
from gzsb.enrollment.views import current_actor, flow_of, own_application
from gzsb.errors import ConflictError, GuardRefused, InvalidInput, ServiceError
from gzsb.extensions import db
from gzsb.models import Account, Application, ConfirmationPoint
from gzsb.onsite import service as onsite
from gzsb.onsite.guards import onsite_needed
from gzsb.onsite.names import BOOK_ONSITE, CANCEL_ONSITE, MANUAL_IDENTITY, ONSITE_EVENTS
from gzsb.staff.steps import required_documents
from gzsb.workflow.engine import GuardContext

bp = Blueprint("onsite", __name__)

CHANGED = "页面信息已过期，请重新选择。"
WEEKDAYS = "一二三四五六日"


def _now() -> datetime:
    return as_utc(current_app.extensions["gzsb.clock"]())


def day_label(day: date) -> str:
    return f"{day.month}月{day.day}日（周{WEEKDAYS[day.weekday()]}）"


def student_facts(app: Application, *, booking: bool = False) -> dict[str, Any]:
    """Whether the student must come in person, and their appointment: looked up when they
    must (the notice on every state page) or when asked (the 现场确认 page)."""
    flow = flow_of(app)
    ctx = GuardContext(app.uid, app.state, app.data or {}, flow, current_actor(), _now())
    identity = app.state == MANUAL_IDENTITY or bool(((app.data or {}).get("identity") or {}).get("manual"))
    needed = onsite_needed(ctx)
    found = onsite.booking_of(db.session, app.id) if needed or booking else None
    return {"needed": needed, "identity": identity, "booking": found}


template_globals(bp, onsite_events=ONSITE_EVENTS, onsite_facts=student_facts, day_label=day_label)


# ------------------------------------------------------------------------------ student


def _student_page(app: Application, *, errors: Any = None, message: str = "", status: int = 200) -> Any:
    flow = flow_of(app)
    options = {o.event: o for o in engine().options(app, current_actor()) if o.event in ONSITE_EVENTS}
    point = db.session.get(ConfirmationPoint, app.confirmation_point_id) if app.confirmation_point_id else None
    slots = onsite.bookable(db.session, point.id, _now(), flow.onsite.change_until) if point else []
    days = [(day, list(rows)) for day, rows in groupby(slots, key=lambda s: s.day)]
    documents = [d.label for d in required_documents(flow, app.data or {})]
    facts = student_facts(app, booking=True)
    return (
        render_template(
            "onsite/student.html",
            app=app,
            flow=flow,
            point=point,
            days=days,
            booking=facts["booking"],
            needed=facts["needed"],
            for_identity=facts["identity"],
            book=options.get(BOOK_ONSITE),
            cancel=options.get(CANCEL_ONSITE),
            bring=list(flow.onsite.bring) + [f"{label}原件" for label in documents],
            change_hours=int(flow.onsite.change_until.total_seconds() // 3600),
            errors=errors or {},
            message=message,
        ),
        status,
    )


@bp.get("/application/onsite")
@login_required("student")
def student() -> Any:
    return _student_page(own_application())


def _fire(event: str, payload: dict[str, Any]) -> Any:
    app = own_application()
    try:
        engine().fire(app.id, event, current_actor(), payload, expected_version=request.form.get("version", type=int))
    except (InvalidInput, GuardRefused) as exc:
        db.session.rollback()
        return _student_page(db.session.get(Application, app.id), errors=exc.form_errors, status=422)
    except ConflictError:
        db.session.rollback()
        return _student_page(db.session.get(Application, app.id), message=CHANGED, status=409)
    flash("已取消现场确认预约。" if event == CANCEL_ONSITE else "预约成功，请按预约时间携带材料到确认点。")
    return redirect(url_for("onsite.student"))


@bp.post("/application/onsite/book")
@login_required("student")
def book() -> Any:
    return _fire(BOOK_ONSITE, {"slot": request.form.get("slot", "")[:12]})


@bp.post("/application/onsite/cancel")
@login_required("student")
def cancel() -> Any:
    return _fire(CANCEL_ONSITE, {})


# -------------------------------------------------------------------------------- staff


def _day_arg(default: date) -> date:
    try:
        return date.fromisoformat(request.args.get("day", "")[:10])
    except ValueError:
        return default


@bp.get("/staff/onsite")
@login_required("staff")
def staff_day() -> Any:
    me = current_account()
    assert isinstance(me, Account)
    today = _now().astimezone(BEIJING).date()
    day = _day_arg(today)
    point = db.session.get(ConfirmationPoint, me.confirmation_point_id) if me.confirmation_point_id else None
    rows = onsite.day_appointments(db.session, point.id, day) if point else []
    slots = onsite.point_slots(db.session, point.id, *onsite.beijing_day_bounds(day)) if point else []
    return render_template(
        "staff/onsite.html", point=point, day=day, rows=rows, slots=slots,
        previous=day - timedelta(days=1), following=day + timedelta(days=1), today=today,
    )  # fmt: skip


# -------------------------------------------------------------------------------- admin


SLOT_FIELDS = ("day", "first", "last", "minutes", "capacity")


def _slot_form() -> dict[str, Any]:
    values = {name: request.form.get(name, "").strip()[:10] for name in SLOT_FIELDS}
    errors: dict[str, list[str]] = {}
    parsed: dict[str, Any] = {}
    for name, parse, message in (
        ("day", date.fromisoformat, "请填写日期，如2026-12-10"),
        ("first", time.fromisoformat, "请填写时间，如09:00"),
        ("last", time.fromisoformat, "请填写时间，如12:00"),
        ("minutes", int, "请填写整数"),
        ("capacity", int, "请填写整数"),
    ):
        try:
            parsed[name] = parse(values[name])
        except ValueError:
            errors[name] = [message]
    if errors:
        raise InvalidInput("slot form", errors)
    return parsed


def _admin_page(point: ConfirmationPoint, values: Any = None, errors: Any = None, status: int = 200) -> Any:
    today = datetime.combine(_now().astimezone(BEIJING).date(), time(0), tzinfo=BEIJING)
    slots = onsite.point_slots(db.session, point.id, today)
    days = [(day, list(rows)) for day, rows in groupby(slots, key=lambda s: s.day)]
    return (
        render_template("admin/point_slots.html", point=point, days=days, values=values or {}, errors=errors or {}),
        status,
    )


@bp.route("/admin/points/<int:point_id>/slots", methods=["GET", "POST"])
@login_required("admin")
def admin_slots(point_id: int) -> Any:
    point = admin.point_by_id(db.session, point_id)
    if request.method == "GET":
        return _admin_page(point, {"minutes": "30", "capacity": "20", "first": "09:00", "last": "11:30"})
    me = current_account()
    assert me is not None
    try:
        created = onsite.add_slots(db.session, admin.Operator.of(me), _now(), point, **_slot_form())
    except ServiceError as exc:
        db.session.rollback()
        errors = exc.fields if isinstance(exc, InvalidInput) else {"_form": [exc.public_message]}
        return _admin_page(point, request.form, errors, 422)
    db.session.commit()
    flash(f"已添加{len(created)}个时段" if created else "这些时段已存在，未添加新时段")
    return redirect(url_for("onsite.admin_slots", point_id=point.id))


@bp.post("/admin/points/<int:point_id>/slots/<int:slot_id>")
@login_required("admin")
def admin_capacity(point_id: int, slot_id: int) -> Any:
    point = admin.point_by_id(db.session, point_id)
    slot = onsite.slot_of_point(db.session, point, slot_id)
    me = current_account()
    assert me is not None
    try:
        capacity = int(request.form.get("capacity", "")[:4])
        onsite.set_capacity(db.session, admin.Operator.of(me), _now(), slot, capacity)
    except ValueError:
        return _admin_page(point, errors={"_form": ["可预约人数请填写整数"]}, status=422)
    except ServiceError as exc:
        db.session.rollback()
        errors = exc.fields if isinstance(exc, InvalidInput) else {"_form": [exc.public_message]}
        return _admin_page(point, errors=errors, status=422)
    db.session.commit()
    flash(f"已修改时段{onsite.SlotView(slot).text}的可预约人数为{capacity}")
    return redirect(url_for("onsite.admin_slots", point_id=point.id))

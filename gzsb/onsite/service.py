"""现场确认: a 确认点's time slots and the students' appointments.

Booking is one conditional UPDATE (``booked = booked + 1 WHERE booked < capacity``): under
any concurrency a slot never holds more than its capacity (the table's CHECK backs this up),
and a full slot refuses in Chinese. Steps call ``book``/``cancel`` inside the engine's
transaction, so the appointment, the application's data and the history event commit
together. Slots are stored in UTC and shown and grouped by Beijing day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gzsb.admin.service import Operator, record
from gzsb.common.beijing import BEIJING, as_utc, beijing_text
from gzsb.common.security import basic_info_of
from gzsb.errors import ConflictError, InvalidInput, NotFound
from gzsb.models import Application, ConfirmationPoint, OnsiteBooking, OnsiteSlot

log = logging.getLogger(__name__)

FULL = "该时段已约满，请选择其他时段"
PAST = "该时段已开始或即将开始，不能预约，请选择其他时段"
OTHER_POINT = "只能预约您所选确认点的时段"
NO_POINT = "您尚未选择确认点，请先完成基本信息"
MAX_CAPACITY = 500
MAX_SLOTS_AT_ONCE = 48


@dataclass(frozen=True)
class SlotView:
    slot: OnsiteSlot

    @property
    def remaining(self) -> int:
        return max(self.slot.capacity - self.slot.booked, 0)

    @property
    def day(self) -> date:
        return as_utc(self.slot.starts_at).astimezone(BEIJING).date()

    @property
    def text(self) -> str:
        """``2026年12月10日 09:00–09:30`` (Beijing time)."""
        end = as_utc(self.slot.ends_at).astimezone(BEIJING).strftime("%H:%M")
        return f"{beijing_text(self.slot.starts_at)}–{end}"


def utc(moment: datetime) -> datetime:
    """Any aware (or naive UTC, from SQLite) moment as UTC: SQLite keeps no offset, so every
    moment is stored and compared in UTC."""
    return as_utc(moment).astimezone(UTC)


def beijing_day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=BEIJING)
    return utc(start), utc(start + timedelta(days=1))


# ---------------------------------------------------------------------- admin: slots


def add_slots(
    session: Session,
    by: Operator,
    now: datetime,
    point: ConfirmationPoint,
    *,
    day: date,
    first: time,
    last: time,
    minutes: int,
    capacity: int,
) -> list[OnsiteSlot]:
    """Slots of ``minutes`` from ``first`` until ``last`` (Beijing time) on ``day``, each for
    ``capacity`` students; a start that already has a slot is skipped."""
    if not 5 <= minutes <= 480:
        raise InvalidInput("slot length", {"minutes": ["每个时段为5～480分钟"]})
    if not 1 <= capacity <= MAX_CAPACITY:
        raise InvalidInput("capacity", {"capacity": [f"每个时段可预约人数为1～{MAX_CAPACITY}人"]})
    start = datetime.combine(day, first, tzinfo=BEIJING)
    end = datetime.combine(day, last, tzinfo=BEIJING)
    if end <= start:
        raise InvalidInput("slot range", {"last": ["结束时间须晚于开始时间"]})
    if utc(start) <= utc(now):
        raise InvalidInput("slot in the past", {"day": ["只能添加将来的时段"]})
    existing = set(
        session.scalars(
            select(OnsiteSlot.starts_at).where(
                OnsiteSlot.point_id == point.id,
                OnsiteSlot.starts_at >= utc(start),
                OnsiteSlot.starts_at < utc(end),
            )
        )
    )
    existing = {utc(e) for e in existing}
    created: list[OnsiteSlot] = []
    step = timedelta(minutes=minutes)
    moment = start
    while moment + step <= end:
        if len(created) >= MAX_SLOTS_AT_ONCE:
            raise InvalidInput("too many slots", {"minutes": [f"一次最多添加{MAX_SLOTS_AT_ONCE}个时段"]})
        if utc(moment) not in existing:
            slot = OnsiteSlot(
                point_id=point.id, starts_at=utc(moment), ends_at=utc(moment + step), capacity=capacity, booked=0
            )
            session.add(slot)
            created.append(slot)
        moment += step
    session.flush()
    if created:
        record(
            session, by, now, "add_onsite_slots", f"point:{point.code}",
            day=day.isoformat(), first=first.strftime("%H:%M"), last=last.strftime("%H:%M"),
            minutes=minutes, capacity=capacity, count=len(created),
        )  # fmt: skip
    return created


def set_capacity(session: Session, by: Operator, now: datetime, slot: OnsiteSlot, capacity: int) -> None:
    """Change a slot's capacity; never below what is already booked (one conditional UPDATE)."""
    if not 0 <= capacity <= MAX_CAPACITY:
        raise InvalidInput("capacity", {"capacity": [f"可预约人数为0～{MAX_CAPACITY}人"]})
    done = session.execute(
        update(OnsiteSlot)
        .where(OnsiteSlot.id == slot.id, OnsiteSlot.booked <= capacity)
        .values(capacity=capacity)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(
            f"slot {slot.id}: capacity {capacity} below bookings", public="可预约人数不能少于已预约人数"
        )
    session.refresh(slot)
    record(session, by, now, "set_onsite_capacity", f"slot:{slot.id}", capacity=capacity)


def slot_of_point(session: Session, point: ConfirmationPoint, slot_id: int) -> OnsiteSlot:
    slot = session.get(OnsiteSlot, slot_id)
    if slot is None or slot.point_id != point.id:
        raise NotFound(f"no slot {slot_id} at point {point.code}", public="未找到该时段")
    return slot


def point_slots(session: Session, point_id: int, since: datetime, until: datetime | None = None) -> list[SlotView]:
    query = select(OnsiteSlot).where(OnsiteSlot.point_id == point_id, OnsiteSlot.starts_at >= utc(since))
    if until is not None:
        query = query.where(OnsiteSlot.starts_at < utc(until))
    return [SlotView(s) for s in session.scalars(query.order_by(OnsiteSlot.starts_at))]


# ------------------------------------------------------------------ students: booking


def bookable(session: Session, point_id: int, now: datetime, change_until: timedelta) -> list[SlotView]:
    """The point's slots a student may still pick (full ones too: the page shows 已约满)."""
    return point_slots(session, point_id, utc(now) + change_until)


def booking_of(session: Session, application_id: int) -> SlotView | None:
    row = session.scalars(
        select(OnsiteSlot)
        .join(OnsiteBooking, OnsiteBooking.slot_id == OnsiteSlot.id)
        .where(OnsiteBooking.application_id == application_id)
    ).first()
    return SlotView(row) if row is not None else None


def book(
    session: Session, application_id: int, point_id: int | None, slot_id: int, now: datetime, change_until: timedelta
) -> SlotView:
    """Book (or move the booking to) ``slot_id`` of the application's 确认点 ``point_id`` (the
    locked row's: the step passes it, no second read of the row): at most ``capacity`` per slot."""
    if point_id is None:
        raise InvalidInput(f"application {application_id} has no point", {"slot": [NO_POINT]})
    slot = session.get(OnsiteSlot, slot_id)
    if slot is None or slot.point_id != point_id:
        raise InvalidInput(f"slot {slot_id} is not at the point of {application_id}", {"slot": [OTHER_POINT]})
    if utc(slot.starts_at) - change_until <= utc(now):
        raise InvalidInput(f"slot {slot_id} starts too soon", {"slot": [PAST]})
    current = session.scalars(select(OnsiteBooking).where(OnsiteBooking.application_id == application_id)).first()
    if current is not None and current.slot_id == slot_id:
        raise InvalidInput(f"application {application_id} already holds slot {slot_id}", {"slot": ["您已预约该时段"]})
    taken = session.execute(
        update(OnsiteSlot)
        .where(OnsiteSlot.id == slot_id, OnsiteSlot.booked < OnsiteSlot.capacity)
        .values(booked=OnsiteSlot.booked + 1)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidInput(f"slot {slot_id} is full", {"slot": [FULL]})
    if current is not None:
        _release(session, current.slot_id)
        current.slot_id, current.booked_at = slot_id, utc(now)
    else:
        session.add(OnsiteBooking(application_id=application_id, slot_id=slot_id, booked_at=utc(now)))
    session.flush()
    session.refresh(slot)
    log.info("application %d: onsite slot %d booked", application_id, slot_id)
    return SlotView(slot)


def _release(session: Session, slot_id: int) -> None:
    session.execute(
        update(OnsiteSlot)
        .where(OnsiteSlot.id == slot_id, OnsiteSlot.booked > 0)
        .values(booked=OnsiteSlot.booked - 1)
        .execution_options(synchronize_session=False)
    )


def cancel(session: Session, application_id: int) -> int | None:
    """Drop the application's booking (its seat goes back to the slot); the slot id or None."""
    current = session.scalars(select(OnsiteBooking).where(OnsiteBooking.application_id == application_id)).first()
    if current is None:
        return None
    slot_id = current.slot_id
    session.execute(delete(OnsiteBooking).where(OnsiteBooking.id == current.id))
    _release(session, slot_id)
    log.info("application %d: onsite slot %d cancelled", application_id, slot_id)
    return slot_id


# ------------------------------------------------------------------- staff: the day


def day_appointments(session: Session, point_id: int, day: date) -> list[dict[str, Any]]:
    """The point's appointments on a Beijing day, by slot; names for staff, IDs masked by the page."""
    start, end = beijing_day_bounds(day)
    rows = session.execute(
        select(OnsiteSlot, Application)
        .join(OnsiteBooking, OnsiteBooking.slot_id == OnsiteSlot.id)
        .join(Application, Application.id == OnsiteBooking.application_id)
        .where(OnsiteSlot.point_id == point_id, OnsiteSlot.starts_at >= start, OnsiteSlot.starts_at < end)
        .order_by(OnsiteSlot.starts_at, OnsiteBooking.booked_at, OnsiteBooking.id)
    )
    out = []
    for slot, app in rows:
        info = basic_info_of(app.data)
        out.append(
            {
                "slot": SlotView(slot),
                "uid": app.uid,
                "name": info.get("name") or app.account.name,
                "id_number": info.get("id_number", ""),
                "category": info.get("category", ""),
                "identity_check": bool(((app.data or {}).get("identity") or {}).get("manual")),
                "state": app.state,
            }
        )
    return out

"""现场确认 appointments: a 确认点's time slots with their capacity, and the bookings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gzsb.extensions import db
from gzsb.models.core import utcnow


class OnsiteSlot(db.Model):
    """One time slot of a 确认点. ``booked`` moves only in conditional UPDATEs (``booked <
    capacity``); the CHECK makes overbooking impossible even for a statement that forgets it."""

    __tablename__ = "onsite_slots"
    __table_args__ = (
        UniqueConstraint("point_id", "starts_at", name="uq_onsite_slots_point_start"),
        CheckConstraint("booked >= 0 AND booked <= capacity", name="ck_onsite_slots_booked"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    point_id: Mapped[int] = mapped_column(ForeignKey("confirmation_points.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True))
    capacity: Mapped[int]
    booked: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)


class OnsiteBooking(db.Model):
    """An application's one current appointment (cancelling deletes it; the history keeps it)."""

    __tablename__ = "onsite_bookings"
    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"), unique=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("onsite_slots.id"), index=True)
    booked_at: Mapped[datetime] = mapped_column(db.DateTime(timezone=True), default=utcnow)

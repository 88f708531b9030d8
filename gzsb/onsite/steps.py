"""现场确认 booking and cancelling: history events of the application (who, when, which slot)."""

from __future__ import annotations

from typing import Any

from gzsb.common.beijing import as_utc
from gzsb.common.fields import StepSchema, row_id
from gzsb.enrollment.service import services_of
from gzsb.errors import InvalidInput
from gzsb.onsite import service as onsite
from gzsb.workflow.engine import StepContext
from gzsb.workflow.registry import STEPS


class BookSchema(StepSchema):
    slot = row_id("预约时段", "请选择预约时段")


@STEPS.register("book_onsite", schema=BookSchema(), example=lambda: {"slot": 1})
def book_onsite(ctx: StepContext, payload: dict[str, Any]) -> None:
    """Book a slot of the student's 确认点, or move the appointment to another one."""
    session = services_of(ctx, "onsite booking").session
    record = ctx.record
    point = getattr(record, "confirmation_point_id", None)
    booked = onsite.book(session, record.id, point, payload["slot"], ctx.now, ctx.flow.onsite.change_until)
    section = ctx.section("onsite")
    moved_from = section.get("slot")
    section.update(
        slot=booked.slot.id,
        starts_at=as_utc(booked.slot.starts_at).isoformat(),
        ends_at=as_utc(booked.slot.ends_at).isoformat(),
        booked_at=ctx.now.isoformat(),
    )
    section.pop("cancelled_at", None)
    ctx.record_in_history(slot=booked.slot.id, starts_at=section["starts_at"], moved_from=moved_from)


@STEPS.register("cancel_onsite", schema=StepSchema(), example=dict)
def cancel_onsite(ctx: StepContext, _payload: dict[str, Any]) -> None:
    session = services_of(ctx, "onsite booking").session
    released = onsite.cancel(session, ctx.record.id)
    if released is None:
        raise InvalidInput(f"application {ctx.record.uid} has no booking", {"slot": ["您还没有预约现场确认时段"]})
    ctx.data["onsite"] = {"slot": None, "cancelled_at": ctx.now.isoformat()}
    ctx.record_in_history(slot=released)

"""Who may book a 现场确认 slot, and until when an appointment may change. Pure: data and
``ctx.now`` only."""

from __future__ import annotations

from datetime import datetime

from gzsb.common.beijing import beijing_text
from gzsb.onsite.names import MANUAL_IDENTITY
from gzsb.workflow.engine import GuardContext
from gzsb.workflow.registry import GUARDS


def onsite_needed(ctx: GuardContext) -> bool:
    """Failed online identity (the manual check, asked for or after the face match), or a
    考生类别 the flow's ``onsite.categories`` names."""
    if ctx.state == MANUAL_IDENTITY or ctx.get("identity", "manual"):
        return True
    return ctx.get("basic_info", "category", default="") in ctx.flow.onsite.categories


@GUARDS.register("onsite_required")
def onsite_required(ctx: GuardContext, _args: None) -> str | None:
    """The student must come to the 确认点 in person."""
    return None if onsite_needed(ctx) else "您无需到确认点现场确认"


@GUARDS.register("onsite_booked")
def onsite_booked(ctx: GuardContext, _args: None) -> str | None:
    return None if ctx.get("onsite", "slot") else "您还没有预约现场确认时段"


@GUARDS.register("onsite_changeable")
def onsite_changeable(ctx: GuardContext, _args: None) -> str | None:
    """No appointment yet, or the current one starts later than ``onsite.change_until``."""
    starts = ctx.get("onsite", "starts_at")
    if not ctx.get("onsite", "slot") or not starts:
        return None
    moment = datetime.fromisoformat(str(starts))
    if moment - ctx.flow.onsite.change_until <= ctx.now:
        hours = int(ctx.flow.onsite.change_until.total_seconds() // 3600)
        return f"预约时段（{beijing_text(moment)}）开始前{hours}小时内不能修改或取消"
    return None

"""The guards the Tianjin flow uses. Each returns None to pass, or a reason in Chinese."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from gzsb.common.beijing import beijing_text
from gzsb.workflow.engine import GuardContext
from gzsb.workflow.registry import GUARDS

# Categories that need their papers checked by a confirmation point (上传审核).
REVIEWED_CATEGORIES = frozenset({"退役士兵", "建档立卡贫困家庭", "残疾人", "其他"})


@GUARDS.register("window_open", args=fields.String(required=True), refers_to="windows")
def window_open(ctx: GuardContext, window: str) -> str | None:
    """The named time window is open now, for the applicant's group (确认点 or district)."""
    spec = ctx.flow.windows[window]
    # Before 基本信息 neither is known: the window's own dates apply. A window without groups
    # reads no data, so fleet reports (workflow/impact.py) evaluate it once per state.
    if spec.by_point or spec.by_district:
        spec = spec.for_group(
            point=ctx.get("basic_info", "confirmation_point"), district=ctx.get("basic_info", "district")
        )
    phase = spec.phase(ctx.now)
    if phase == "upcoming":
        return f"报名尚未开始，开始时间：{beijing_text(spec.opens)}"
    if phase == "closed":
        return f"报名时间已截止（{beijing_text(spec.closes)}）"
    return None


class _Attempts(Schema):
    counter = fields.String(required=True, validate=validate.Length(min=1))
    max = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))


@GUARDS.register("attempts_left", args=fields.Nested(_Attempts, required=True))
def attempts_left(ctx: GuardContext, args) -> str | None:  # type: ignore[no-untyped-def]
    """The named counter has not reached its maximum."""
    used = int(ctx.get("counters", args["counter"], default=0))
    if used >= args["max"]:
        return f"已达到最大尝试次数（{args['max']}次）"
    return None


@GUARDS.register("xueji_checked")
def xueji_checked(ctx: GuardContext, _args: None) -> str | None:
    """The student has looked up their 学籍/学历 and confirmed, reported or accepted the result."""
    if not ctx.get("xueji", "status"):
        return "请先点击【验证学籍/学历】"
    if ctx.get("xueji", "status") == "found" and not ctx.get("xueji", "answer"):
        return "请核对学籍/学历信息并确认"
    return None


@GUARDS.register("xueji_found")
def xueji_found(ctx: GuardContext, _args: None) -> str | None:
    """A 学籍/学历 record was found (so a correction can be requested)."""
    if ctx.get("xueji", "status") != "found":
        return "未查询到学籍/学历记录，请先验证学籍/学历"
    return None


@GUARDS.register("materials_required")
def materials_required(ctx: GuardContext, _args: None) -> str | None:
    """The applicant must upload materials for review: a special category, or no registry match."""
    category = ctx.get("basic_info", "category", default="普通")
    # A category the flow's materials section names documents for is reviewed too.
    named = bool(ctx.flow.materials.categories.get(category))
    if category in REVIEWED_CATEGORIES or named or ctx.get("xueji", "status") == "not_found":
        return None
    if ctx.get("xueji", "answer") == "wrong":
        return None
    return "无需上传审核材料"

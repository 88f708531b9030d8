"""Steps of §2.6–2.8: pledge, basic information, 志愿 and the 学籍/学历 check, confirmation."""

from __future__ import annotations

import logging
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from gzsb.errors import InvalidInput
from gzsb.steps.fields import IdNumberField, StepSchema, agreed, choice, pattern, text
from gzsb.workflow.engine import StepContext
from gzsb.workflow.registry import STEPS

log = logging.getLogger(__name__)

SEXES = ("男", "女")
POLITICAL = ("中共党员", "中共预备党员", "共青团员", "民主党派", "群众")
CATEGORIES = ("普通", "退役士兵", "建档立卡贫困家庭", "残疾人", "其他")


class PledgeSchema(StepSchema):
    agree = agreed("考试承诺书")


@STEPS.register("pledge", schema=PledgeSchema(), example=lambda: {"agree": True})
def pledge(ctx: StepContext, payload: dict[str, Any]) -> None:
    ctx.section("pledge")["accepted_at"] = ctx.now.isoformat()


class BasicInfoSchema(StepSchema):
    name = text("姓名", max_length=30, metadata={"sensitive": True})
    sex = choice("性别", SEXES)
    ethnicity = text("民族", max_length=20)
    political_status = choice("政治面貌", POLITICAL)
    id_number = IdNumberField(
        required=True, error_messages={"required": "请填写身份证号"}, metadata={"label": "身份证号", "sensitive": True}
    )
    birth_date = fields.Date(
        required=True,
        error_messages={"required": "请填写出生日期", "invalid": "出生日期格式应为YYYY-MM-DD"},
        metadata={"label": "出生日期"},
    )
    mobile = pattern("手机", r"^1[3-9]\d{9}$", "请填写11位手机号码", metadata={"sensitive": True})
    address = text("通讯地址", max_length=100, metadata={"sensitive": True})
    postcode = pattern("邮编", r"^\d{6}$", "邮编应为6位数字")
    college = text("毕业院校", max_length=60)
    major = text("所学专业", max_length=60)
    graduation_year = fields.Integer(
        required=True,
        validate=validate.Range(min=1990, max=2100, error="请填写正确的毕业年份"),
        error_messages={"required": "请填写毕业年份", "invalid": "请填写正确的毕业年份"},
        metadata={"label": "毕业年份"},
    )
    category = choice("考生类别", CATEGORIES)
    confirmation_point = text("确认点", max_length=16)

    @validates_schema
    def birth_date_matches_id(self, data: dict[str, Any], **kwargs: Any) -> None:
        number, born = data.get("id_number"), data.get("birth_date")
        if number and born and number[6:14] != born.strftime("%Y%m%d"):
            raise ValidationError("出生日期与身份证号不一致", "birth_date")
        if number and data.get("sex") and data["sex"] != ("男" if int(number[16]) % 2 else "女"):
            raise ValidationError("性别与身份证号不一致", "sex")


def _basic_info_example() -> dict[str, Any]:
    return {
        "name": "张三",
        "sex": "男",
        "ethnicity": "汉族",
        "political_status": "共青团员",
        "id_number": "120101200301011236",
        "birth_date": "2003-01-01",
        "mobile": "13800138000",
        "address": "天津市南开区卫津路92号",
        "postcode": "300072",
        "college": "天津职业大学",
        "major": "计算机应用技术",
        "graduation_year": 2026,
        "category": "普通",
        "confirmation_point": "NK01",
    }


@STEPS.register("basic_info", schema=BasicInfoSchema(), example=_basic_info_example)
def basic_info(ctx: StepContext, payload: dict[str, Any]) -> None:
    services = ctx.services
    if services is not None:
        point = services.confirmation_point(payload["confirmation_point"])
        if point is None:
            raise InvalidInput("unknown confirmation point", {"confirmation_point": ["请选择确认点"]})
        ctx.record.confirmation_point_id = point
        if not services.is_own_id_number(ctx.record, payload["id_number"]):
            raise InvalidInput("id number differs from the account's", {"id_number": ["身份证号须与注册时一致"]})
    info = dict(payload)
    info["birth_date"] = payload["birth_date"].isoformat()
    ctx.data["basic_info"] = info
    # Editing the basic information invalidates an earlier registry check.
    if ctx.data.get("xueji", {}).get("id_number") not in (None, info["id_number"]):
        ctx.data.pop("xueji", None)


@STEPS.register("xueji_lookup")
def xueji_lookup(ctx: StepContext, payload: dict[str, Any]) -> None:
    info = ctx.data.get("basic_info") or {}
    record = ctx.services.xueji_lookup(info.get("id_number", "")) if ctx.services else None
    if record is not None and record.get("name") != info.get("name"):
        # Same ID number, other name: show it, the student reports the mismatch.
        record = {**record, "name_mismatch": True}
    ctx.data["xueji"] = {
        "status": "found" if record else "not_found",
        "record": record or {},
        "answer": None,
        "id_number": info.get("id_number"),
        "checked_at": ctx.now.isoformat(),
    }
    ctx.record_in_history(result="found" if record else "not_found")


class XuejiConfirmSchema(StepSchema):
    answer = choice("核对结果", ("correct",))


@STEPS.register("xueji_confirm", schema=XuejiConfirmSchema(), example=lambda: {"answer": "correct"})
def xueji_confirm(ctx: StepContext, payload: dict[str, Any]) -> None:
    ctx.section("xueji")["answer"] = "correct"


class XuejiReportSchema(StepSchema):
    problem = text("错误说明", max_length=500)
    evidence = fields.List(fields.String(), load_default=list, metadata={"label": "证明材料"})


@STEPS.register("xueji_report", schema=XuejiReportSchema(), example=lambda: {"problem": "毕业年份有误"})
def xueji_report(ctx: StepContext, payload: dict[str, Any]) -> None:
    section = ctx.section("xueji")
    section["answer"] = "wrong"
    section["report"] = {"problem": payload["problem"], "evidence": payload["evidence"], "at": ctx.now.isoformat()}
    ctx.emit("correction_request", problem=payload["problem"], evidence=payload["evidence"])


class ChoiceSchema(StepSchema):
    institution = text("院校", max_length=20)
    major = text("专业", max_length=20)


class PreferencesSchema(StepSchema):
    choices = fields.List(
        fields.Nested(ChoiceSchema),
        required=True,
        validate=validate.Length(min=1, error="请至少填写志愿一"),
        error_messages={"required": "请至少填写志愿一"},
        metadata={"label": "志愿"},
    )

    @validates_schema
    def no_duplicates(self, data: dict[str, Any], **kwargs: Any) -> None:
        seen = set()
        for position, item in enumerate(data.get("choices", [])):
            key = (item["institution"], item["major"])
            if key in seen:
                raise ValidationError({position: {"major": ["志愿不能重复"]}}, "choices")
            seen.add(key)


@STEPS.register(
    "preferences",
    schema=PreferencesSchema(),
    example=lambda: {"choices": [{"institution": "10060", "major": "080901"}]},
)
def preferences(ctx: StepContext, payload: dict[str, Any]) -> None:
    limit = int(ctx.settings.get("max_preferences", 1))
    if len(payload["choices"]) > limit:
        raise InvalidInput("too many preferences", {"choices": [f"最多可填报{limit}个志愿"]})
    ctx.data["preferences"] = payload["choices"]


@STEPS.register("confirm_info")
def confirm_info(ctx: StepContext, payload: dict[str, Any]) -> None:
    ctx.section("confirmation")["confirmed_at"] = ctx.now.isoformat()

"""Steps of §2.6–2.8: pledge, basic information, 志愿 and the 学籍/学历 check, confirmation."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from marshmallow import ValidationError, fields, post_load, pre_load, validate, validates_schema

from gzsb.common.fields import AsciiInteger, IdNumberField, StepSchema, agreed, choice, pattern, text
from gzsb.common.security import basic_info_of, seal_fields
from gzsb.enrollment.names import MAX_PREFERENCES
from gzsb.enrollment.service import services_of
from gzsb.errors import InvalidInput
from gzsb.workflow.engine import StepContext
from gzsb.workflow.registry import STEPS

log = logging.getLogger(__name__)

SEXES = ("男", "女")
POLITICAL = ("中共党员", "中共预备党员", "共青团员", "民主党派", "无党派人士", "群众")
# Special categories are checked by a confirmation point (guards.checks.REVIEWED_CATEGORIES).
CATEGORIES = ("普通", "退役士兵", "建档立卡贫困家庭", "残疾人", "其他")
# The 56 ethnic groups in the order of GB/T 3304.
ETHNIC_GROUPS = (
    "汉族", "蒙古族", "回族", "藏族", "维吾尔族", "苗族", "彝族", "壮族", "布依族", "朝鲜族",
    "满族", "侗族", "瑶族", "白族", "土家族", "哈尼族", "哈萨克族", "傣族", "黎族", "傈僳族",
    "佤族", "畲族", "高山族", "拉祜族", "水族", "东乡族", "纳西族", "景颇族", "柯尔克孜族", "土族",
    "达斡尔族", "仫佬族", "羌族", "布朗族", "撒拉族", "毛南族", "仡佬族", "锡伯族", "阿昌族", "普米族",
    "塔吉克族", "怒族", "乌孜别克族", "俄罗斯族", "鄂温克族", "德昂族", "保安族", "裕固族", "京族", "塔塔尔族",
    "独龙族", "鄂伦春族", "赫哲族", "门巴族", "珞巴族", "基诺族",
)  # fmt: skip
NUMERALS = "一二三四五六七八九十"
# Evidence images are stored under random names by the web layer (gzsb.enrollment.catalog_views).
EVIDENCE_NAME = r"^[0-9a-f]{32}\.(jpg|png)$"
MAX_EVIDENCE = 5


def preference_label(position: int) -> str:
    """志愿一, 志愿二, … for the 0-based position."""
    return "志愿" + (NUMERALS[position] if position < len(NUMERALS) else str(position + 1))


class PledgeSchema(StepSchema):
    agree = agreed("考试承诺书")


@STEPS.register("pledge", schema=PledgeSchema(), example=lambda: {"agree": True})
def pledge(ctx: StepContext, payload: dict[str, Any]) -> None:
    ctx.section("pledge")["accepted_at"] = ctx.now.isoformat()


class BasicInfoSchema(StepSchema):
    name = text("姓名", max_length=30, metadata={"sensitive": True})
    sex = choice("性别", SEXES)
    ethnicity = choice("民族", ETHNIC_GROUPS)
    political_status = choice("政治面貌", POLITICAL)
    id_number = IdNumberField(
        required=True, error_messages={"required": "请填写身份证号"}, metadata={"label": "身份证号", "sensitive": True}
    )
    # Derived from the ID number when left out; checked against it when given.
    birth_date = fields.Date(
        load_default=None,
        error_messages={"invalid": "出生日期格式应为YYYY-MM-DD"},
        metadata={"label": "出生日期"},
    )
    mobile = pattern("手机", r"^1[3-9][0-9]{9}$", "请填写11位手机号码", metadata={"sensitive": True})
    address = text("通讯地址", max_length=100, metadata={"sensitive": True})
    postcode = pattern("邮编", r"^[0-9]{6}$", "邮编应为6位数字")
    college = text("毕业院校", max_length=60)
    major = text("所学专业", max_length=60)
    graduation_year = AsciiInteger(
        required=True,
        validate=validate.Range(min=1990, max=2100, error="请填写正确的毕业年份"),
        error_messages={"required": "请填写毕业年份", "invalid": "请填写正确的毕业年份"},
        metadata={"label": "毕业年份"},
    )
    category = choice("考生类别", CATEGORIES)
    confirmation_point = fields.String(
        required=True,
        validate=validate.Length(min=1, max=16, error="请选择确认点"),
        error_messages={"required": "请选择确认点", "null": "请选择确认点", "invalid": "请选择确认点"},
        metadata={"label": "确认点"},
    )

    @pre_load
    def blank_birth_date(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and data.get("birth_date") in ("", None):
            data = {k: v for k, v in data.items() if k != "birth_date"}
        return data

    @post_load
    def derive_birth_date(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        number = data.get("id_number")
        if data.get("birth_date") is None and number:
            data["birth_date"] = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        return data

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
    services = services_of(ctx, "confirmation points, accounts")
    point = services.confirmation_point(payload["confirmation_point"])
    if point is None:
        raise InvalidInput("unknown confirmation point", {"confirmation_point": ["请选择确认点"]})
    if not services.is_own_id_number(ctx.record, payload["id_number"]):
        raise InvalidInput("id number differs from the account's", {"id_number": ["身份证号须与注册时一致"]})
    info = dict(payload)
    info["birth_date"] = payload["birth_date"].isoformat()
    # The ID number's 区县 code in clear (a masked number shows it too): staggered windows use it.
    info["district"] = payload["id_number"][:6]
    _check_against_registry(ctx, services.xueji_lookup(payload["id_number"]), info)
    # ID number, mobile and address are stored only encrypted (read through basic_info_of).
    ctx.data["basic_info"] = seal_fields(services.vault, info)
    # Set after the lookups above: set before, their queries' autoflush wrote it in an UPDATE of
    # its own; now it goes with the transition's UPDATE.
    ctx.record.confirmation_point_id = point
    # Editing the basic information invalidates an earlier registry check.
    checked = ctx.data.get("xueji", {})
    if checked and checked.get("id_index") != services.vault.index(info["id_number"]):
        ctx.data.pop("xueji", None)


# 基本信息 fields the 学籍/学历 record also holds: record key → form field.
REGISTRY_FIELDS = {"school": "college", "major": "major", "graduation_year": "graduation_year"}


def registry_mismatch(record: dict[str, Any] | None, info: dict[str, Any]) -> dict[str, str]:
    """Fields typed differently from the 学籍/学历 record: form field → the record's value."""
    if not record:
        return {}
    return {
        form: str(record[key])
        for key, form in REGISTRY_FIELDS.items()
        if record.get(key) not in (None, "") and str(info.get(form, "")).strip() != str(record[key])
    }


def _check_against_registry(ctx: StepContext, record: dict[str, Any] | None, info: dict[str, Any]) -> None:
    """Accepted, but never silently: a difference from the record is kept for the pages (a
    warning to the student, the confirmation point sees it) and recorded in the history."""
    mismatch = registry_mismatch(record, info)
    if mismatch:
        ctx.data["registry_mismatch"] = mismatch
        ctx.record_in_history(registry_mismatch=sorted(mismatch))
    else:
        ctx.data.pop("registry_mismatch", None)


class DraftChoiceSchema(StepSchema):
    institution = fields.String(load_default="", validate=validate.Length(max=20))
    major = fields.String(load_default="", validate=validate.Length(max=20))


def draft_field() -> fields.List:
    """志愿 typed but not yet submitted, posted along with the 学籍/学历 buttons of the same
    page so that nothing typed is lost; kept as a draft until 【完成报名】."""
    return fields.List(
        fields.Nested(DraftChoiceSchema),
        load_default=None,
        validate=validate.Length(max=10, error="志愿过多"),
        metadata={"label": "志愿（草稿）"},
    )


def _keep_draft(ctx: StepContext, payload: dict[str, Any]) -> None:
    if payload.get("choices") is not None:
        ctx.data["preferences_draft"] = [c for c in payload["choices"] if c.get("institution") or c.get("major")]


class XuejiLookupSchema(StepSchema):
    choices = draft_field()


@STEPS.register("xueji_lookup", schema=XuejiLookupSchema(), example=dict)
def xueji_lookup(ctx: StepContext, payload: dict[str, Any]) -> None:
    _keep_draft(ctx, payload)
    services = services_of(ctx, "the 学籍/学历 registry")
    info = basic_info_of(ctx.data, services.vault)
    record = services.xueji_lookup(info.get("id_number", ""))
    if record is not None and record.get("name") != info.get("name"):
        # Same ID number, other name: show it, the student reports the mismatch.
        record = {**record, "name_mismatch": True}
    ctx.data["xueji"] = {
        "status": "found" if record else "not_found",
        "record": record or {},
        "answer": None,
        # The blind index, not the number: which ID number was checked, without storing it.
        "id_index": services.vault.index(info["id_number"]) if info.get("id_number") else None,
        "checked_at": ctx.now.isoformat(),
    }
    ctx.record_in_history(result="found" if record else "not_found")


class XuejiConfirmSchema(StepSchema):
    answer = choice("核对结果", ("correct",))
    choices = draft_field()


@STEPS.register("xueji_confirm", schema=XuejiConfirmSchema(), example=lambda: {"answer": "correct"})
def xueji_confirm(ctx: StepContext, payload: dict[str, Any]) -> None:
    _keep_draft(ctx, payload)
    section = ctx.section("xueji")
    section["answer"] = "correct"
    section["confirmed_at"] = ctx.now.isoformat()
    # The student takes back an earlier report: it leaves the registrar's queue.
    services_of(ctx, "correction requests").close_open_corrections(
        ctx.record.id, status="withdrawn", note="考生确认学籍/学历信息正确", now=ctx.now
    )


class XuejiReportSchema(StepSchema):
    # Free text about one's own record (names, dates): keyed-hashed in the history; the
    # CorrectionRequest row holds it for the registrar.
    problem = text("错误说明", max_length=500, metadata={"sensitive": True})
    evidence = fields.List(
        fields.String(validate=validate.Regexp(EVIDENCE_NAME, error="证明材料无效，请重新上传")),
        required=True,
        validate=validate.Length(min=1, max=MAX_EVIDENCE, error=f"请上传1至{MAX_EVIDENCE}张证明材料图片"),
        error_messages={"required": "请上传证明材料图片", "null": "请上传证明材料图片"},
        metadata={"label": "证明材料"},
    )
    choices = draft_field()


@STEPS.register(
    "xueji_report",
    schema=XuejiReportSchema(),
    example=lambda: {"problem": "毕业年份有误", "evidence": ["0" * 32 + ".jpg"]},
)
def xueji_report(ctx: StepContext, payload: dict[str, Any]) -> None:
    """信息有误: the report goes to the registrar's queue as a CorrectionRequest, written in
    this transition's transaction (a refused or failed transition leaves no request)."""
    _keep_draft(ctx, payload)
    section = ctx.section("xueji")
    section["answer"] = "wrong"
    services = services_of(ctx, "correction requests")
    services.close_open_corrections(ctx.record.id, status="superseded", note="考生重新提交了更正申请", now=ctx.now)
    request_id = services.file_correction(
        ctx.record.id,
        registry_record_id=(section.get("record") or {}).get("id"),
        confirmation_point_id=getattr(ctx.record, "confirmation_point_id", None),
        problem=payload["problem"],
        # Storage keys under the uploads folder (see gzsb.enrollment.catalog_views.evidence_key).
        evidence=[f"evidence/{ctx.record.uid}/{name}" for name in payload["evidence"]],
        now=ctx.now,
    )
    # The request row is the report's one record (pages read it through latest_correction).
    ctx.record_in_history(correction_request=request_id)


class ChoiceSchema(StepSchema):
    institution = text("院校", max_length=20)
    major = text("专业", max_length=20)


class PreferencesSchema(StepSchema):
    choices = fields.List(
        fields.Nested(ChoiceSchema),
        required=True,
        validate=validate.Length(min=1, error="请至少填写志愿一"),
        error_messages={"required": "请至少填写志愿一", "null": "请至少填写志愿一"},
        metadata={"label": "志愿"},
    )

    @validates_schema
    def no_duplicates(self, data: dict[str, Any], **kwargs: Any) -> None:
        first: dict[tuple[str, str], int] = {}
        errors: dict[int, dict[str, list[str]]] = {}
        for position, item in enumerate(data.get("choices", [])):
            key = (item["institution"], item["major"])
            if key in first:
                errors[position] = {"major": [f"志愿不能重复（与{preference_label(first[key])}相同）"]}
            else:
                first[key] = position
        if errors:
            raise ValidationError(errors, "choices")


@STEPS.register(
    "preferences",
    schema=PreferencesSchema(),
    example=lambda: {"choices": [{"institution": "10060", "major": "080901"}]},
)
def preferences(ctx: StepContext, payload: dict[str, Any]) -> None:
    choices = payload["choices"]
    limit = int(ctx.settings.get(MAX_PREFERENCES, 1))
    if len(choices) > limit:
        raise InvalidInput("too many preferences", {"choices": [f"最多可填报{limit}个志愿"]})
    services = services_of(ctx, "the catalogue")
    errors, described = services.checked_choices(choices)
    if errors:
        raise InvalidInput("preferences not in the catalogue", {"choices": errors})
    ctx.data["preferences"] = [dict(c) for c in described]
    ctx.data.pop("preferences_draft", None)


@STEPS.register("confirm_info")
def confirm_info(ctx: StepContext, payload: dict[str, Any]) -> None:
    ctx.section("confirmation")["confirmed_at"] = ctx.now.isoformat()

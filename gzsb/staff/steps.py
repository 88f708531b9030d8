"""Staff decisions (manual identity, materials, 学籍 corrections) and the materials upload (§2.11).

Approvals are announced by the flow's ``notify`` (the state they lead to has its SMS);
rejections and correction decisions emit their SMS here, so the student hears of every
decision. The reason itself is shown after login, never put in an SMS.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from gzsb.common.fields import StepSchema, choice, row_id, text
from gzsb.enrollment.service import services_of
from gzsb.errors import ConflictError, InvalidInput
from gzsb.staff.names import IDENTITY_QUEUE
from gzsb.workflow.engine import StepContext
from gzsb.workflow.registry import STEPS
from gzsb.workflow.spec import DocumentSpec

log = logging.getLogger(__name__)

MAX_MATERIALS = 10
MATERIAL_KIND = "material"
CORRECTION_DECISIONS = ("accepted", "rejected")
STALE_MATERIALS = "部分材料已删除或无效，请刷新页面后重新提交"


def required_documents(flow: Any, data: Mapping[str, Any]) -> tuple[DocumentSpec, ...]:
    """The named documents (upload slots) of this applicant, from the flow's ``materials``."""
    info = data.get("basic_info") or {}
    xueji = data.get("xueji") or {}
    return flow.materials.documents_for(
        str(info.get("category") or ""), str(xueji.get("status") or ""), str(xueji.get("answer") or "")
    )


class DecisionSchema(StepSchema):
    note = text("备注", required=False, max_length=200, load_default="")


class RejectionSchema(StepSchema):
    reason = text("不通过原因", max_length=200)


def _review_key(ctx: StepContext) -> str:
    return "identity" if ctx.record.state == IDENTITY_QUEUE else "materials"


def _account_id(actor_id: str) -> int | None:
    kind, _, number = actor_id.partition(":")
    return int(number) if kind == "account" and number.isdigit() else None


@STEPS.register("review_decision", schema=DecisionSchema(), example=lambda: {"note": ""})
def review_decision(ctx: StepContext, payload: dict[str, Any]) -> None:
    section = ctx.section(_review_key(ctx))
    section["review"] = {"decision": "approved", "note": payload["note"], "by": ctx.actor.id, "at": ctx.now.isoformat()}


@STEPS.register("review_rejection", schema=RejectionSchema(), example=lambda: {"reason": "材料不清晰，请重新上传"})
def review_rejection(ctx: StepContext, payload: dict[str, Any]) -> None:
    key = _review_key(ctx)
    section = ctx.section(key)
    section["review"] = {
        "decision": "rejected",
        "reason": payload["reason"],
        "by": ctx.actor.id,
        "at": ctx.now.isoformat(),
    }
    # The flow's notify covers entering a state; a rejection needs its own message.
    ctx.emit("sms", template=f"{key}_rejected")


class MaterialsSchema(StepSchema):
    files = fields.List(
        fields.String(validate=validate.Length(min=1, max=80)),
        required=True,
        validate=validate.Length(min=1, max=MAX_MATERIALS, error=f"请上传1至{MAX_MATERIALS}张材料照片"),
        error_messages={"required": "请上传材料", "null": "请上传材料"},
        metadata={"label": "审核材料"},
    )


@STEPS.register("materials", schema=MaterialsSchema(), example=lambda: {"files": ["0" * 32]})
def materials(ctx: StepContext, payload: dict[str, Any]) -> None:
    """【提交审核】: the uids come from the browser, so each must be a live material upload
    of this very application (never another student's file, never a deleted one)."""
    files = list(dict.fromkeys(payload["files"]))  # a double click may send one twice
    known = services_of(ctx, "uploads").upload_slots(ctx.record.id, files, MATERIAL_KIND)
    unknown = [uid for uid in files if uid not in known]
    if unknown:
        log.warning("application %s: %d submitted material(s) are not its live uploads", ctx.record.uid, len(unknown))
        raise InvalidInput(f"materials of {ctx.record.uid}: unknown uploads {unknown}", {"files": [STALE_MATERIALS]})
    # Every named, non-optional document of the applicant's 考生类别 must be among them.
    sent = set(known.values())
    missing = [d.label for d in required_documents(ctx.flow, ctx.data) if not d.optional and d.key not in sent]
    if missing:
        raise InvalidInput(
            f"materials of {ctx.record.uid}: missing {missing}", {"files": [f"请上传：{'、'.join(missing)}"]}
        )
    section = ctx.section("materials")
    rounds = int(section.get("round", 0)) + 1
    earlier = section.get("review")
    if earlier:
        section.setdefault("earlier", []).append(
            {"files": section.get("files", []), "slots": section.get("slots", {}), "review": earlier}
        )
    section.update(
        files=files,
        slots={uid: known[uid] for uid in files},
        submitted_at=ctx.now.isoformat(),
        review=None,
        round=rounds,
    )
    ctx.record_in_history(round=rounds)


class CorrectionSchema(StepSchema):
    request = row_id("更正申请", "更正申请无效")
    decision = choice("处理结果", CORRECTION_DECISIONS)
    reason = text("处理意见", required=False, max_length=200, load_default="")

    @validates_schema
    def _reason_when_rejected(self, data: dict[str, Any], **_kw: Any) -> None:
        if data.get("decision") == "rejected" and not data.get("reason"):
            raise ValidationError("请填写不通过原因", "reason")


@STEPS.register(
    "xueji_correction",
    schema=CorrectionSchema(),
    example=lambda: {"request": 1, "decision": "accepted", "reason": ""},
)
def xueji_correction(ctx: StepContext, payload: dict[str, Any]) -> None:
    """A confirmation point decides a 学籍/学历 correction request (信息有误)."""
    decided = services_of(ctx, "correction requests").decide_correction(
        ctx.record.id,
        payload["request"],
        status=payload["decision"],
        note=payload["reason"],
        decided_by=_account_id(ctx.actor.id),
        now=ctx.now,
    )
    if not decided:
        raise ConflictError(
            f"correction request {payload['request']} of {ctx.record.uid} is not open",
            public="该更正申请已被处理或已撤回，请刷新页面",
        )
    ctx.emit("sms", template=f"xueji_correction_{payload['decision']}")

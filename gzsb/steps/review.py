"""Staff decisions (manual identity, materials) and the materials upload (§2.11)."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from gzsb.steps.fields import StepSchema, text
from gzsb.workflow.engine import StepContext
from gzsb.workflow.registry import STEPS


class DecisionSchema(StepSchema):
    note = text("备注", required=False, max_length=200, load_default="")


class RejectionSchema(StepSchema):
    reason = text("不通过原因", max_length=200)


def _review_key(ctx: StepContext) -> str:
    return "identity" if ctx.record.state == "manual_identity" else "materials"


@STEPS.register("review_decision", schema=DecisionSchema(), example=lambda: {"note": ""})
def review_decision(ctx: StepContext, payload: dict[str, Any]) -> None:
    section = ctx.section(_review_key(ctx))
    section["review"] = {"decision": "approved", "note": payload["note"], "by": ctx.actor.id, "at": ctx.now.isoformat()}


@STEPS.register("review_rejection", schema=RejectionSchema(), example=lambda: {"reason": "材料不清晰，请重新上传"})
def review_rejection(ctx: StepContext, payload: dict[str, Any]) -> None:
    section = ctx.section(_review_key(ctx))
    section["review"] = {
        "decision": "rejected",
        "reason": payload["reason"],
        "by": ctx.actor.id,
        "at": ctx.now.isoformat(),
    }


class MaterialsSchema(StepSchema):
    files = fields.List(
        fields.String(validate=validate.Length(min=1, max=80)),
        required=True,
        validate=validate.Length(min=1, max=10, error="请上传1至10张材料照片"),
        error_messages={"required": "请上传材料"},
        metadata={"label": "审核材料"},
    )


@STEPS.register("materials", schema=MaterialsSchema(), example=lambda: {"files": ["demo-material"]})
def materials(ctx: StepContext, payload: dict[str, Any]) -> None:
    section = ctx.section("materials")
    section.update(files=payload["files"], submitted_at=ctx.now.isoformat(), review=None)

"""Steps of §2.9 身份认证: upload, face match results, the manual path."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from gzsb.steps.fields import StepSchema, text
from gzsb.workflow.engine import StepContext
from gzsb.workflow.registry import STEPS


class IdentityUploadSchema(StepSchema):
    photo = text("证件照", max_length=80)
    id_card = text("身份证人像面", max_length=80)


@STEPS.register(
    "identity_upload",
    schema=IdentityUploadSchema(),
    example=lambda: {"photo": "demo-photo", "id_card": "demo-id-card"},
)
def identity_upload(ctx: StepContext, payload: dict[str, Any]) -> None:
    counters = ctx.section("counters")
    counters["face"] = int(counters.get("face", 0)) + 1
    identity = ctx.section("identity")
    identity.update(photo=payload["photo"], id_card=payload["id_card"], result=None, attempt=counters["face"])
    ctx.emit("job", name="face_match", attempt=counters["face"])


class ManualRequestSchema(StepSchema):
    photo = text("证件照", required=False, max_length=80)
    no_id_card = fields.Boolean(load_default=False, metadata={"label": "无身份证"})
    note = text("说明", required=False, max_length=200)


@STEPS.register("manual_identity_request", schema=ManualRequestSchema(), example=lambda: {"note": "身份证遗失"})
def manual_identity_request(ctx: StepContext, payload: dict[str, Any]) -> None:
    identity = ctx.section("identity")
    identity["manual"] = {"requested_at": ctx.now.isoformat(), **{k: v for k, v in payload.items() if v}}


class FaceResultSchema(StepSchema):
    matched = fields.Boolean(required=True)
    distance = fields.Float(required=True)
    threshold = fields.Float(required=True)
    model = fields.String(required=True)
    reason = fields.String(load_default="")


@STEPS.register(
    "face_result",
    schema=FaceResultSchema(),
    example=lambda: {"matched": True, "distance": 0.41, "threshold": 0.6, "model": "Dlib"},
)
def face_result(ctx: StepContext, payload: dict[str, Any]) -> None:
    ctx.section("identity")["result"] = {**payload, "at": ctx.now.isoformat()}


class FaceFailureSchema(StepSchema):
    error = fields.String(required=True, validate=validate.Length(min=1))


@STEPS.register("face_failure", schema=FaceFailureSchema(), example=lambda: {"error": "worker timed out"})
def face_failure(ctx: StepContext, payload: dict[str, Any]) -> None:
    ctx.section("identity")["result"] = {"matched": False, "error": payload["error"], "at": ctx.now.isoformat()}
    # A crash is not the student's fault: give the attempt back.
    counters = ctx.section("counters")
    counters["face"] = max(int(counters.get("face", 1)) - 1, 0)

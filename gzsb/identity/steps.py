"""Steps of §2.9 身份认证: consent, upload, face match results, the manual path, retention.

``data["identity"]`` holds: ``consent`` {given_at, version, text_sha256}; ``photo`` and
``id_card`` (Upload uids of the last upload; ``id_card`` absent on the no-ID-card manual
path); ``attempt``; ``result`` of the last match {matched, band, distance, threshold
(auto-pass), review_threshold, model, reason, at} or of a failed check {matched: False,
error, reason, at}; ``outcome``: why the application is in the manual queue (``review``,
``mismatch``, ``no_id_card``, ``requested``); ``manual`` (the request); ``review`` (the
staff decision, written by the review steps); ``id_card_purged`` once the retention job
deleted the ID-card images.
"""

from __future__ import annotations

import logging
from typing import Any

from marshmallow import fields, validate

from gzsb.adapters.faces import BAND_LABELS, MISMATCH, PASS
from gzsb.common.fields import StepSchema, agreed, text
from gzsb.enrollment.service import services_of
from gzsb.errors import InvalidInput
from gzsb.identity.attempts import DAILY_CAP_REACHED
from gzsb.identity.names import FACE_DAILY_ATTEMPTS
from gzsb.workflow.engine import StepContext
from gzsb.workflow.registry import STEPS

log = logging.getLogger(__name__)

# Versioned so a later change of the consent text can be told apart in the records.
CONSENT_VERSION = "2026-11-face-v1"
FAILURE_REASON = "人脸比对未能完成，请稍后重新上传"
STALE_IMAGE = "图片已失效，请重新上传"


def _require_own_uploads(ctx: StepContext, payload: dict[str, Any]) -> None:
    """Upload ids come from the client: each must be this application's live upload of its
    kind (the identity pages store the files first, then fire with their ids)."""
    services = services_of(ctx, "uploads")
    given = {kind: payload[kind] for kind in ("photo", "id_card") if payload.get(kind)}
    live = services.live_upload_kinds(ctx.record.id, list(given.values()))
    errors = {kind: [STALE_IMAGE] for kind, uid in given.items() if live.get(uid) != kind}
    if errors:
        log.warning("application %s: identity images that are not its live uploads: %s", ctx.record.uid, sorted(errors))
        raise InvalidInput(f"identity images of {ctx.record.uid} are not its live uploads: {sorted(errors)}", errors)


class ConsentSchema(StepSchema):
    agree = agreed("人脸信息处理同意书")


@STEPS.register("face_consent", schema=ConsentSchema(), example=lambda: {"agree": True})
def face_consent(ctx: StepContext, payload: dict[str, Any]) -> None:
    identity = ctx.section("identity")
    identity["consent"] = {"given_at": ctx.now.isoformat(), "version": CONSENT_VERSION, "by": ctx.actor.id}
    ctx.record_in_history(consent_version=CONSENT_VERSION)


class IdentityUploadSchema(StepSchema):
    photo = text("证件照", max_length=80)
    id_card = text("身份证人像面", max_length=80)


@STEPS.register(
    "identity_upload",
    schema=IdentityUploadSchema(),
    example=lambda: {"photo": "demo-photo", "id_card": "demo-id-card"},
)
def identity_upload(ctx: StepContext, payload: dict[str, Any]) -> None:
    _require_own_uploads(ctx, payload)
    _take_daily_attempt(ctx)
    counters = ctx.section("counters")
    counters["face"] = int(counters.get("face", 0)) + 1
    identity = ctx.section("identity")
    identity.update(photo=payload["photo"], id_card=payload["id_card"], result=None, attempt=counters["face"])
    identity.pop("review", None)  # an earlier staff decision is about earlier images
    ctx.emit("job", name="face_match", attempt=counters["face"])


def _take_daily_attempt(ctx: StepContext) -> None:
    """The per-ID-number daily cap, counted in this transition's transaction (a failed
    transition gives the attempt back)."""
    cap = int(ctx.settings.get(FACE_DAILY_ATTEMPTS, 30))
    count = services_of(ctx, "face attempts").take_face_attempt(ctx.record.account_id, ctx.now, cap)
    if count is None:
        raise InvalidInput(
            f"application {ctx.record.uid}: daily face attempts of its ID number used up ({cap})",
            {"_upload": [DAILY_CAP_REACHED.format(cap=cap)]},
        )
    ctx.record_in_history(daily_attempt=count, daily_cap=cap)


class ManualRequestSchema(StepSchema):
    photo = text("证件照", required=False, max_length=80)
    id_card = text("身份证人像面", required=False, max_length=80)
    no_id_card = fields.Boolean(load_default=False, metadata={"label": "无身份证"})
    note = text("说明", required=False, max_length=200)


@STEPS.register("manual_identity_request", schema=ManualRequestSchema(), example=lambda: {"note": "身份证遗失"})
def manual_identity_request(ctx: StepContext, payload: dict[str, Any]) -> None:
    _require_own_uploads(ctx, payload)
    identity = ctx.section("identity")
    if payload.get("photo"):
        identity["photo"] = payload["photo"]
    if payload.get("no_id_card"):
        identity.pop("id_card", None)  # staff compare the 证件照 with the applicant in person
    elif payload.get("id_card"):
        identity["id_card"] = payload["id_card"]
    _require_manual_images(ctx, identity, bool(payload.get("no_id_card")))
    identity.pop("review", None)
    identity["outcome"] = "no_id_card" if payload.get("no_id_card") else "requested"
    identity["manual"] = {
        "requested_at": ctx.now.isoformat(),
        "no_id_card": bool(payload.get("no_id_card")),
        **({"note": payload["note"]} if payload.get("note") else {}),
    }


def _require_manual_images(ctx: StepContext, identity: dict[str, Any], no_id_card: bool) -> None:
    """Staff need a 证件照, and the ID card unless the student has none: a request without
    them (the JSON API skips the upload page) would put an empty item in their queue."""
    services = services_of(ctx, "uploads")
    needed = {"photo": "请上传证件照（用于人工认证和报名表）"}
    if not no_id_card:
        needed["id_card"] = "请上传身份证人像面，没有身份证的请勾选“无身份证”"
    live = services.live_upload_kinds(ctx.record.id, [identity[kind] for kind in needed if identity.get(kind)])
    errors = {
        kind: [message]
        for kind, message in needed.items()
        if not identity.get(kind) or live.get(identity[kind]) != kind
    }
    if errors:
        raise InvalidInput(f"manual identity request of {ctx.record.uid} without images: {sorted(errors)}", errors)


class FaceResultSchema(StepSchema):
    matched = fields.Boolean(required=True)
    # pass / review / mismatch; absent in results recorded before the review band existed.
    band = fields.String(load_default=None, validate=validate.OneOf(tuple(BAND_LABELS)))
    distance = fields.Float(required=True)
    threshold = fields.Float(required=True)  # the auto-pass threshold
    review_threshold = fields.Float(load_default=None)
    model = fields.String(required=True)
    reason = fields.String(load_default="")


@STEPS.register(
    "face_result",
    schema=FaceResultSchema(),
    example=lambda: {
        "matched": False, "band": "review", "distance": 0.47, "threshold": 0.415, "review_threshold": 0.55,
        "model": "Dlib",
    },
)  # fmt: skip
def face_result(ctx: StepContext, payload: dict[str, Any]) -> None:
    """The job's answer, whichever of face_matched / face_review / face_mismatch fired."""
    band = payload.get("band") or (PASS if payload["matched"] else MISMATCH)
    if payload["matched"] != (band == PASS):
        raise InvalidInput(f"face result says matched={payload['matched']} in band {band!r}", {"band": ["不一致"]})
    result = {**{k: v for k, v in payload.items() if v is not None}, "band": band, "at": ctx.now.isoformat()}
    if band != PASS and not payload.get("reason"):
        result["reason"] = BAND_LABELS[band]
    identity = ctx.section("identity")
    identity["result"] = result
    identity["outcome"] = band


class FaceFailureSchema(StepSchema):
    error = fields.String(required=True, validate=validate.Length(min=1))
    reason = fields.String(load_default=FAILURE_REASON)


@STEPS.register("face_failure", schema=FaceFailureSchema(), example=lambda: {"error": "worker timed out"})
def face_failure(ctx: StepContext, payload: dict[str, Any]) -> None:
    ctx.section("identity")["result"] = {
        "matched": False,
        "error": payload["error"],
        "reason": payload["reason"] or FAILURE_REASON,
        "at": ctx.now.isoformat(),
    }
    # Not a comparison that said "different people" (a crash, a timeout, an image with no
    # usable face): give the attempt back.
    counters = ctx.section("counters")
    counters["face"] = max(int(counters.get("face", 1)) - 1, 0)


class PurgeSchema(StepSchema):
    uploads = fields.List(fields.String(validate=validate.Length(min=1, max=32)), required=True)
    settled_at = fields.String(required=True)
    retention_hours = fields.Float(required=True)


@STEPS.register(
    "purge_id_card",
    schema=PurgeSchema(),
    example=lambda: {"uploads": ["0" * 32], "settled_at": "2026-12-01T02:00:00+00:00", "retention_hours": 72},
)
def purge_id_card(ctx: StepContext, payload: dict[str, Any]) -> None:
    """The retention job deletes the ID-card images after this event is recorded."""
    identity = ctx.section("identity")
    identity["id_card_purged"] = {"at": ctx.now.isoformat(), "uploads": list(payload["uploads"])}


# ------------------------------------------------------------------ personal information rights

FACE_IMAGES = ("photo", "id_card")


@STEPS.register("face_consent_withdrawal")
def face_consent_withdrawal(ctx: StepContext, payload: dict[str, Any]) -> None:
    """The consent ends; the face images are listed for deletion (the worker deletes them
    once this is committed) and no longer used; the manual check needs no consent."""
    identity = ctx.section("identity")
    consent = identity.pop("consent", None) or {}
    uploads = [identity.pop(kind) for kind in FACE_IMAGES if identity.get(kind)]
    identity.pop("result", None)
    identity["consent_withdrawn"] = {
        "at": ctx.now.isoformat(),
        "version": consent.get("version", CONSENT_VERSION),
        "uploads": uploads,
    }
    ctx.record_in_history(consent_version=consent.get("version", CONSENT_VERSION), uploads=uploads)


class DeletionRequestSchema(StepSchema):
    agree = agreed("删除个人信息的说明")


@STEPS.register("data_deletion_request", schema=DeletionRequestSchema(), example=lambda: {"agree": True})
def data_deletion_request(ctx: StepContext, payload: dict[str, Any]) -> None:
    """Recorded here (and in the history); the worker deletes what the exam record does not need."""
    ctx.section("privacy")["deletion_request"] = {"requested_at": ctx.now.isoformat(), "by": ctx.actor.id}
    ctx.record_in_history(deletion_requested=True)

"""身份认证 (§2.9): checking and storing the two images, the face-match job, retention.

The web side (``submit_for_matching``, ``request_manual``) checks every image before
anything is stored and fires the flow's event; a refused file changes nothing already
saved. Face detection for the upload checks uses dlib's HOG detector only (see
``gzsb.adapters.faces``): the web process never loads deepface or a framework.

The worker side (``run_face_job``) loads the images, runs the matcher and fires, by the
band the distance falls in, ``face_matched`` / ``face_review`` / ``face_mismatch`` (or
``face_check_failed``) as ``system:faces``. ID-card retention lives in
``gzsb.identity.retention`` (``purge_id_cards`` is re-exported here for the worker).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.adapters.faces import MISMATCH, PASS, REVIEW, FaceMatcher, FaceProblem, Located, QualityRules, first_problem
from gzsb.adapters.storage import Storage
from gzsb.common.uploads import CleanImage, ImageProblem, accept_image, read_upload, store_image
from gzsb.errors import ConflictError, EventNotAvailable, GuardRefused, InvalidInput, NotFound
from gzsb.identity.names import (
    FACE_ATTEMPTS,
    FACE_CHECK_FAILED,
    FACE_CHECKING,
    FACE_MATCHED,
    FACE_MISMATCH,
    FACE_REVIEW,
    REQUEST_MANUAL_IDENTITY,
    UPLOAD_IDENTITY,
)
from gzsb.identity.retention import ID_CARD, purge_id_cards, settled_at
from gzsb.models import Application, Outbox, Upload
from gzsb.workflow.engine import Actor, Engine, Fired

log = logging.getLogger(__name__)
__all__ = ["purge_id_cards", "settled_at"]  # re-exported: the worker imports them from here

PHOTO = "photo"
LABELS = {PHOTO: "证件照", ID_CARD: "身份证人像面"}
FACE_JOB = "face_match"
FACES = Actor.system("faces")
CHECKING = FACE_CHECKING
BAND_EVENTS = {PASS: FACE_MATCHED, REVIEW: FACE_REVIEW, MISMATCH: FACE_MISMATCH}

NOT_PORTRAIT = ("ID photo is not in portrait orientation", "证件照应为竖版（高度大于宽度），请重新拍摄或裁剪后上传")
UNREADABLE = "图片已失效，请重新上传"
UNAVAILABLE = "人脸比对服务暂时不可用，请稍后重新上传"
TIMED_OUT = "人脸比对超时，请重新上传"


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int
    min_face: int
    rules: QualityRules = QualityRules()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> UploadLimits:
        return cls(
            int(config["UPLOAD_MAX_BYTES"]),
            int(config["UPLOAD_MAX_PIXELS"]),
            int(config["FACE_MIN_SIZE"]),
            QualityRules.from_config(config),
        )


# ------------------------------------------------------------------ image checks


def check_image(stream: BinaryIO | bytes, kind: str, limits: UploadLimits, matcher: FaceMatcher | None) -> CleanImage:
    """Size, type, pixels, re-encoding; the 证件照 upright and about 3:4; with a matcher,
    exactly one whole face, big and sharp enough, not turned or tilted, and a plain
    background behind the 证件照. Raises ImageProblem with the Chinese reason (what to fix)."""
    image = accept_image(stream, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
    portrait = kind == PHOTO
    if portrait and image.height <= image.width:
        raise ImageProblem(*NOT_PORTRAIT)
    detection = matcher.detect(image.data) if matcher is not None else None
    problem = detection.problem(limits.min_face) if detection is not None else None
    quality = detection.quality if detection is not None else None
    problem = problem or first_problem(quality, limits.rules, width=image.width, height=image.height, portrait=portrait)
    if problem is not None:
        raise ImageProblem(f"{kind}: {problem.english}", problem.chinese)
    if detection is not None and detection.located is not None:
        return replace(image, face=detection.located.to_dict())
    return image


def _check_all(
    files: Mapping[str, BinaryIO | bytes | None],
    kinds: tuple[str, ...],
    limits: UploadLimits,
    matcher: FaceMatcher | None,
) -> tuple[dict[str, CleanImage], dict[str, list[str]]]:
    images: dict[str, CleanImage] = {}
    errors: dict[str, list[str]] = {}
    for kind in kinds:
        stream = files.get(kind)
        if stream is None:
            continue
        try:
            images[kind] = check_image(stream, kind, limits, matcher)
        except ImageProblem as exc:
            errors[kind] = [exc.chinese]
            log.info("identity upload refused (%s): %s", kind, exc)
    return images, errors


def _require(eng: Engine, app: Application, actor: Actor, event: str) -> None:
    """Refuse before storing anything when the event could not fire anyway."""
    for option in eng.options(app, actor):
        if option.event == event:
            if not option.available:
                raise GuardRefused(f"{event!r} refused for {app.uid}", list(option.reasons))
            return
    raise EventNotAvailable(f"event {event!r} is not available in state {app.state!r}")


def _store(session: Session, storage: Storage, app: Application, images: Mapping[str, CleanImage]) -> list[Upload]:
    uploads = [
        store_image(session, storage, application_id=app.id, application_uid=app.uid, kind=kind, image=image)
        for kind, image in images.items()
    ]
    session.commit()
    return uploads


def _unstore(session: Session, storage: Storage, uploads: list[Upload]) -> None:
    """The event did not fire: the files never belonged to the application."""
    for upload in uploads:
        storage.delete(upload.storage_key)
        session.delete(upload)
    session.commit()


def _fire_with(
    session: Session,
    storage: Storage,
    eng: Engine,
    app: Application,
    actor: Actor,
    event: str,
    images: Mapping[str, CleanImage],
    payload: dict[str, Any],
    version: int | None,
) -> Fired:
    uploads = _store(session, storage, app, images)
    payload = {**payload, **{u.kind: u.uid for u in uploads}}
    try:
        return eng.fire(app.id, event, actor, payload, expected_version=version)
    except BaseException:
        _unstore(session, storage, uploads)
        raise


def submit_for_matching(
    session: Session,
    storage: Storage,
    eng: Engine,
    app: Application,
    actor: Actor,
    files: Mapping[str, BinaryIO | bytes | None],
    *,
    version: int | None,
    limits: UploadLimits,
    matcher: FaceMatcher,
) -> Fired:
    """【上传认证】: both images checked (faces included), stored, upload_identity fired."""
    _require(eng, app, actor, UPLOAD_IDENTITY)
    images, errors = _check_all(files, (PHOTO, ID_CARD), limits, matcher)
    for kind in (PHOTO, ID_CARD):
        if files.get(kind) is None:
            errors[kind] = [f"请选择{LABELS[kind]}图片（JPG或PNG）"]
    if errors:
        raise InvalidInput(f"identity upload of {app.uid} refused: {sorted(errors)}", errors)
    return _fire_with(session, storage, eng, app, actor, UPLOAD_IDENTITY, images, {}, version)


def request_manual(
    session: Session,
    storage: Storage,
    eng: Engine,
    app: Application,
    actor: Actor,
    files: Mapping[str, BinaryIO | bytes | None],
    *,
    no_id_card: bool,
    note: str,
    version: int | None,
    limits: UploadLimits,
) -> Fired:
    """【申请人工认证】: the 证件照 (unless one is on file), the ID card unless the student has
    none; no face processing (the student may not have agreed to it)."""
    _require(eng, app, actor, REQUEST_MANUAL_IDENTITY)
    identity = (app.data or {}).get("identity") or {}
    kinds = (PHOTO,) if no_id_card else (PHOTO, ID_CARD)
    images, errors = _check_all(files, kinds, limits, None)
    if files.get(PHOTO) is None and not _on_file(session, app, identity.get(PHOTO)):
        errors[PHOTO] = ["请上传证件照（用于人工认证和报名表）"]
    if not no_id_card and files.get(ID_CARD) is None and not _on_file(session, app, identity.get(ID_CARD)):
        errors[ID_CARD] = ["请上传身份证人像面，没有身份证的请勾选“无身份证”"]
    if errors:
        raise InvalidInput(f"manual identity request of {app.uid} refused: {sorted(errors)}", errors)
    payload: dict[str, Any] = {"no_id_card": no_id_card, "note": note}
    return _fire_with(session, storage, eng, app, actor, REQUEST_MANUAL_IDENTITY, images, payload, version)


def _on_file(session: Session, app: Application, uid: str | None) -> bool:
    if not uid:
        return False
    upload = session.scalars(select(Upload).where(Upload.uid == uid, Upload.application_id == app.id)).first()
    return upload is not None and upload.deleted_at is None


def identity_view(app: Application, flow_settings: Mapping[str, Any]) -> dict[str, Any]:
    """What the identity pages show: consent, last result, attempts left, staff decision."""
    data = app.data or {}
    identity = data.get("identity") or {}
    used = int((data.get("counters") or {}).get("face", 0))
    limit = int(flow_settings.get(FACE_ATTEMPTS, 3))
    result = identity.get("result") or {}
    review = identity.get("review") or {}
    band = result.get("band") or ("pass" if result.get("matched") else "mismatch" if result else "")
    return {
        "consented": bool((identity.get("consent") or {}).get("given_at")),
        "attempts_used": used,
        "attempts_left": max(limit - used, 0),
        "attempt_limit": limit,
        "result": result,
        "failure": result.get("reason") if result and not result.get("matched") and band != REVIEW else "",
        "in_review": band == REVIEW,  # 待人工复核: not a rejection, staff compare the images
        "outcome": identity.get("outcome", ""),
        "review": review,
        "rejected_reason": review.get("reason", "") if review.get("decision") == "rejected" else "",
        "manual": identity.get("manual") or {},
        "photo": identity.get(PHOTO),
        "id_card": identity.get(ID_CARD),
        "verified": bool(result.get("matched")) or review.get("decision") == "approved",
    }


# Why an application waits in the manual identity queue (staff filter by it).
OUTCOMES = {
    "review": "待人工复核（比对分数在复核区间）",
    "mismatch": "人脸不一致",
    "no_id_card": "无身份证",
    "requested": "考生申请",
}


def queue_outcome(data: Mapping[str, Any] | None) -> str:
    """The key of OUTCOMES for an application's identity data (older data has no ``outcome``)."""
    identity = (data or {}).get("identity") or {}
    outcome = identity.get("outcome")
    if outcome in OUTCOMES:
        return str(outcome)
    manual = identity.get("manual") or {}
    if manual:
        return "no_id_card" if manual.get("no_id_card") else "requested"
    return "mismatch"


# ------------------------------------------------------------------ the face job


def run_face_job(
    session: Session,
    eng: Engine,
    storage: Storage,
    matcher: FaceMatcher,
    outbox_id: int,
    *,
    final: bool,
) -> str:
    """One face-match job. Returns what happened: matched / review / mismatch / failed / obsolete.

    Idempotent: a job whose application is no longer 比对中 for the upload that queued it
    (the seq that entered face_checking) does nothing. A crash raises (the queue retries)
    unless ``final``, when the check ends as failed. The item records when a worker started
    it: the tick tells a dead worker (started, no answer) from a long queue (not started).
    """
    item = session.get(Outbox, outbox_id)
    if item is None or item.application_id is None:
        return "obsolete"
    app = session.get(Application, item.application_id)
    if app is None or app.state != CHECKING or app.seq != item.payload.get("seq"):
        return "obsolete"
    identity = (app.data or {}).get("identity") or {}
    app_id, version, uid = app.id, app.version, app.uid
    item.payload = {**item.payload, "started_at": eng.clock().astimezone(UTC).isoformat()}
    session.commit()
    try:
        photo_row, photo = read_upload(session, storage, identity.get(PHOTO, ""), application_id=app_id)
        card_row, id_card = read_upload(session, storage, identity.get(ID_CARD, ""), application_id=app_id)
    except NotFound as exc:
        return _fail(eng, app_id, version, str(exc), UNREADABLE)
    # The faces the upload checks found: the match cuts its chips from them (no second HOG pass).
    found = {PHOTO: Located.from_dict(photo_row.face), ID_CARD: Located.from_dict(card_row.face)}
    located = {kind: where for kind, where in found.items() if where is not None}
    try:
        result = matcher.verify(photo, id_card, located=located)
    except FaceProblem as exc:
        return _fail(eng, app_id, version, exc.english, exc.chinese)
    except Exception as exc:
        if not final:
            log.warning("face job %d (application %s) failed, will retry: %s", outbox_id, uid, exc)
            raise
        log.error("face job %d (application %s) failed for good: %s", outbox_id, uid, exc)
        return _fail(eng, app_id, version, f"{type(exc).__name__}: {exc}", UNAVAILABLE)
    event = BAND_EVENTS[result.band]
    try:
        try:
            eng.fire(app_id, event, FACES, result.payload(), expected_version=version)
        except EventNotAvailable:
            if event != FACE_REVIEW:
                raise
            # A flow version before the review band: never an accept, so the mismatch path.
            log.warning(
                "face job %d: application %s's flow has no %s; %s instead", outbox_id, uid, event, FACE_MISMATCH
            )
            event = FACE_MISMATCH
            eng.fire(app_id, event, FACES, result.payload(), expected_version=version)
    except ConflictError:
        return "obsolete"  # another run of this job answered first
    log.info(
        "face job %d: application %s %s (%s, distance %.3f, auto-pass %.3f, review %.3f, %s, %s ms)",
        outbox_id, uid, event, result.band, result.distance, result.thresholds.auto_pass, result.thresholds.review,
        result.model, result.timings.get("total"),
    )  # fmt: skip
    return {PASS: "matched", REVIEW: "review", MISMATCH: "mismatch"}[result.band]


def _fail(eng: Engine, app_id: int, version: int | None, error: str, reason: str) -> str:
    try:
        eng.fire(app_id, FACE_CHECK_FAILED, FACES, {"error": error[:500], "reason": reason}, expected_version=version)
    except ConflictError:
        return "obsolete"
    return "failed"


def fail_stuck_check(eng: Engine, app: Application, error: str) -> str:
    """The job was dispatched too often without an answer: end 比对中 with a clear failure."""
    return _fail(eng, app.id, app.version, error, TIMED_OUT)

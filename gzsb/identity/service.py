"""身份认证 (§2.9): checking and storing the two images, the face-match job, retention.

The web side (``submit_for_matching``, ``request_manual``) checks every image before
anything is stored and fires the flow's event; a refused file changes nothing already
saved. Face detection for the upload checks uses dlib's HOG detector only (see
``gzsb.adapters.faces``): the web process never loads deepface or a framework.

The worker side (``run_face_job``, ``purge_id_cards``) loads the images, runs the matcher
and fires ``face_matched`` / ``face_mismatch`` / ``face_check_failed`` as
``system:faces``; after identity is settled plus a grace period it deletes the ID-card
images, recording ``purge_id_card`` in the history first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gzsb.adapters.faces import FaceMatcher, FaceProblem
from gzsb.adapters.storage import Storage
from gzsb.common.uploads import CleanImage, ImageProblem, accept_image, discard, read_upload, store_image
from gzsb.errors import ConflictError, EventNotAvailable, GuardRefused, InvalidInput, NotFound, ServiceError
from gzsb.identity.names import (
    FACE_ATTEMPTS,
    FACE_CHECK_FAILED,
    FACE_CHECKING,
    FACE_MATCHED,
    FACE_MISMATCH,
    IDENTITY_PENDING,
    IDENTITY_VERIFIED,
    MANUAL_IDENTITY,
    PURGE_ID_CARD,
    REQUEST_MANUAL_IDENTITY,
    UPLOAD_IDENTITY,
)
from gzsb.models import Application, HistoryEvent, Outbox, Timer, Upload
from gzsb.workflow.engine import Actor, Engine, Fired

log = logging.getLogger(__name__)

PHOTO, ID_CARD = "photo", "id_card"
LABELS = {PHOTO: "证件照", ID_CARD: "身份证人像面"}
FACE_JOB = "face_match"
FACES = Actor.system("faces")
RETENTION = Actor.system("retention")
CHECKING = FACE_CHECKING
# Entering identity_verified from these states settles identity (not: an expired order).
SETTLING_STATES = (FACE_CHECKING, MANUAL_IDENTITY)

NOT_PORTRAIT = ("ID photo is not in portrait orientation", "证件照应为竖版（高度大于宽度），请重新拍摄或裁剪后上传")
UNREADABLE = "图片已失效，请重新上传"
UNAVAILABLE = "人脸比对服务暂时不可用，请稍后重新上传"
TIMED_OUT = "人脸比对超时，请重新上传"


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int
    min_face: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> UploadLimits:
        return cls(int(config["UPLOAD_MAX_BYTES"]), int(config["UPLOAD_MAX_PIXELS"]), int(config["FACE_MIN_SIZE"]))


# ------------------------------------------------------------------ image checks


def check_image(stream: BinaryIO | bytes, kind: str, limits: UploadLimits, matcher: FaceMatcher | None) -> CleanImage:
    """Size, type, pixels, re-encoding; the 证件照 upright; with a matcher, exactly one
    whole face that is not too small. Raises ImageProblem with the Chinese reason."""
    image = accept_image(stream, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
    if kind == PHOTO and image.height <= image.width:
        raise ImageProblem(*NOT_PORTRAIT)
    if matcher is not None:
        problem = matcher.detect(image.data).problem(limits.min_face)
        if problem is not None:
            raise ImageProblem(f"{kind}: {problem.english}", problem.chinese)
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
    return {
        "consented": bool((identity.get("consent") or {}).get("given_at")),
        "attempts_used": used,
        "attempts_left": max(limit - used, 0),
        "attempt_limit": limit,
        "result": result,
        "failure": result.get("reason") if result and not result.get("matched") else "",
        "review": review,
        "rejected_reason": review.get("reason", "") if review.get("decision") == "rejected" else "",
        "manual": identity.get("manual") or {},
        "photo": identity.get(PHOTO),
        "id_card": identity.get(ID_CARD),
        "verified": bool(result.get("matched")) or review.get("decision") == "approved",
    }


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
    """One face-match job. Returns what happened: matched / mismatch / failed / obsolete.

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
        _, photo = read_upload(session, storage, identity.get(PHOTO, ""), application_id=app_id)
        _, id_card = read_upload(session, storage, identity.get(ID_CARD, ""), application_id=app_id)
    except NotFound as exc:
        return _fail(eng, app_id, version, str(exc), UNREADABLE)
    try:
        result = matcher.verify(photo, id_card)
    except FaceProblem as exc:
        return _fail(eng, app_id, version, exc.english, exc.chinese)
    except Exception as exc:
        if not final:
            log.warning("face job %d (application %s) failed, will retry: %s", outbox_id, uid, exc)
            raise
        log.error("face job %d (application %s) failed for good: %s", outbox_id, uid, exc)
        return _fail(eng, app_id, version, f"{type(exc).__name__}: {exc}", UNAVAILABLE)
    event = FACE_MATCHED if result.matched else FACE_MISMATCH
    try:
        eng.fire(app_id, event, FACES, result.payload(), expected_version=version)
    except ConflictError:
        return "obsolete"  # another run of this job answered first
    log.info(
        "face job %d: application %s %s (distance %.3f, threshold %.2f, %s ms)",
        outbox_id, uid, event, result.distance, result.threshold, result.timings.get("total"),
    )  # fmt: skip
    return "matched" if result.matched else "mismatch"


def _fail(eng: Engine, app_id: int, version: int | None, error: str, reason: str) -> str:
    try:
        eng.fire(app_id, FACE_CHECK_FAILED, FACES, {"error": error[:500], "reason": reason}, expected_version=version)
    except ConflictError:
        return "obsolete"
    return "failed"


def fail_stuck_check(eng: Engine, app: Application, error: str) -> str:
    """The job was dispatched too often without an answer: end 比对中 with a clear failure."""
    return _fail(eng, app.id, app.version, error, TIMED_OUT)


# ------------------------------------------------------------------ retention


def settled_at(session: Session, app: Application) -> datetime | None:
    """When identity was settled: the last entry into identity_verified by a face match or
    a staff approval (a returning expired order does not count)."""
    at = session.scalars(
        select(HistoryEvent.at)
        .where(
            HistoryEvent.application_id == app.id,
            HistoryEvent.to_state == IDENTITY_VERIFIED,
            HistoryEvent.from_state.in_(SETTLING_STATES),
        )
        .order_by(HistoryEvent.seq.desc())
        .limit(1)
    ).first()
    return datetime.fromisoformat(at).astimezone(UTC) if at else None


def purge_id_cards(
    session: Session, eng: Engine, storage: Storage, now: datetime, retention: timedelta, limit: int = 200
) -> int:
    """Delete the ID-card images of applications settled more than ``retention`` ago.

    The history records ``purge_id_card`` first; the files go after that commit. A run
    that dies in between leaves the event recorded and the files for the next run.
    """
    now = now.astimezone(UTC)
    rows = session.execute(
        select(Upload.application_id, Upload.id)
        .join(Application, Application.id == Upload.application_id)
        .where(
            Upload.kind == ID_CARD,
            Upload.deleted_at.is_(None),
            # Set on first sight below: images inside their grace period cost no more lookups.
            or_(Upload.delete_after.is_(None), Upload.delete_after <= now),
            Application.state.not_in((IDENTITY_PENDING, CHECKING, MANUAL_IDENTITY)),
        )
        .order_by(Upload.application_id, Upload.id)
    ).all()
    by_app: dict[int, list[int]] = {}
    for app_id, upload_id in rows:
        by_app.setdefault(app_id, []).append(upload_id)
    purged = 0
    for app_id, upload_ids in list(by_app.items())[:limit]:
        app = session.get(Application, app_id)
        if app is None:
            continue
        settled = settled_at(session, app)
        if settled is None or now < settled + retention:
            continue
        uploads = [u for u in (session.get(Upload, i) for i in upload_ids) if u is not None]
        for upload in uploads:
            upload.delete_after = settled + retention
        session.commit()
        recorded = bool(((app.data or {}).get("identity") or {}).get("id_card_purged"))
        if not recorded and not _record_purge(session, eng, app, uploads, settled, retention, now):
            continue
        for upload in uploads:
            discard(storage, upload, now)
        session.commit()
        purged += len(uploads)
        log.info("retention: deleted %d ID-card image(s) of application %s", len(uploads), app.uid)
    return purged


def _record_purge(
    session: Session,
    eng: Engine,
    app: Application,
    uploads: list[Upload],
    settled: datetime,
    retention: timedelta,
    now: datetime,
) -> bool:
    open_timer = session.scalars(
        select(Timer.id).where(Timer.application_id == app.id, Timer.fired_at.is_(None)).limit(1)
    ).first()
    if open_timer is not None:
        return False  # a self-loop would make the armed timer obsolete; try after it fired
    payload = {
        "uploads": [u.uid for u in uploads],
        "settled_at": settled.isoformat(),
        "retention_hours": retention.total_seconds() / 3600,
    }
    try:
        eng.fire(app.id, PURGE_ID_CARD, RETENTION, payload, expected_version=app.version, now=now)
    except EventNotAvailable:
        # An application on an older flow version without the event: the image still goes
        # (keeping it would break the retention promise); the log says why no event exists.
        log.warning("retention: application %s (state %s) has no purge_id_card event", app.uid, app.state)
    except ServiceError as exc:
        log.warning("retention: application %s not purged this time: %s", app.uid, exc)
        return False
    return True

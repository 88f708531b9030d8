"""The 身份认证 service: upload checks, the face job, the safety net, retention, the manual path."""

from __future__ import annotations

import io
import json
import struct
import zlib
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import func, select

from gzsb.adapters.faces import DeepFaceMatcher, FaceSettings, Located, MatchResult, Thresholds, face_matcher
from gzsb.bootstrap import engine, storage
from gzsb.common.uploads import ImageProblem
from gzsb.errors import GuardRefused, InvalidInput
from gzsb.extensions import db
from gzsb.identity.service import (
    ID_CARD,
    PHOTO,
    UNAVAILABLE,
    UploadLimits,
    check_image,
    purge_id_cards,
    request_manual,
    run_face_job,
    submit_for_matching,
)
from gzsb.models import Application, HistoryEvent, Outbox, Upload
from gzsb.worker.drain import dispatch_jobs, requeue_stale_jobs
from gzsb.workflow.engine import Actor
from tests.conftest import FLOW_FILE
from tests.support import CONSENT, Applicant, to_confirming

FACES = FLOW_FILE.parent.parent / "tests" / "fixtures" / "faces"
RED, RED2, BLUE = (200, 40, 40), (205, 45, 35), (40, 40, 200)
STAFF = Actor("account:900", "staff")


def png(colour: tuple[int, int, int], size: tuple[int, int] = (300, 400)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def limits(app: Flask, **changes: int) -> UploadLimits:
    return UploadLimits(
        changes.get("max_bytes", app.config["UPLOAD_MAX_BYTES"]),
        changes.get("max_pixels", app.config["UPLOAD_MAX_PIXELS"]),
        changes.get("min_face", app.config["FACE_MIN_SIZE"]),
    )


def record(who: Applicant) -> Application:
    db.session.expire_all()
    row = db.session.get(Application, who.application_id)
    assert row is not None
    return row


def at_identity(who: Applicant, *, consent: bool = True) -> Application:
    eng = engine()
    to_confirming(eng, who)
    eng.fire(who.application_id, "confirm_info", who.actor, {})
    if consent:
        eng.fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    return record(who)


def submit(app: Flask, who: Applicant, photo: bytes, id_card: bytes, matcher: Any = None) -> Any:
    application = record(who)
    return submit_for_matching(
        db.session, storage(), engine(), application, who.actor, {PHOTO: photo, ID_CARD: id_card},
        version=application.version, limits=limits(app), matcher=matcher or face_matcher(app.config),
    )  # fmt: skip


def job_ids(who: Applicant) -> list[int]:
    query = select(Outbox.id).where(Outbox.application_id == who.application_id, Outbox.kind == "job")
    return list(db.session.scalars(query.order_by(Outbox.id)))


def run_job(app: Flask, who: Applicant, matcher: Any = None, *, final: bool = True) -> str:
    return run_face_job(
        db.session, engine(), storage(), matcher or face_matcher(app.config), job_ids(who)[-1], final=final
    )


def events(who: Applicant) -> list[tuple[str, str, dict[str, Any]]]:
    rows = db.session.execute(
        select(HistoryEvent.event, HistoryEvent.to_state, HistoryEvent.payload)
        .where(HistoryEvent.application_id == who.application_id)
        .order_by(HistoryEvent.seq)
    )
    return [(e, s, json.loads(p)) for e, s, p in rows]


def upload_count() -> int:
    return db.session.scalar(select(func.count(Upload.id))) or 0


# ------------------------------------------------------------------ upload checks


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width``×``height`` pixels, with almost no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)  # far too little data: decoding would fail, if it were tried
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_non_image_and_oversized_images_are_refused_before_decoding(app: Flask) -> None:
    with pytest.raises(ImageProblem) as not_image:
        check_image(b"%PDF-1.7 not a picture", PHOTO, limits(app), None)
    assert not_image.value.chinese == "仅支持JPG或PNG格式的图片"
    with pytest.raises(ImageProblem) as too_big:
        check_image(io.BytesIO(b"\xff\xd8\xff" + b"0" * 5000), PHOTO, limits(app, max_bytes=4096), None)
    assert too_big.value.chinese == "图片不能超过4KB"
    # 8000 × 6000 claimed (over the 40-megapixel cap): refused from the header, nothing decoded.
    with pytest.raises(ImageProblem) as too_many:
        check_image(huge_png_header(8000, 6000), ID_CARD, limits(app), None)
    assert too_many.value.chinese == "图片尺寸过大"


def test_the_id_photo_must_be_upright(app: Flask) -> None:
    with pytest.raises(ImageProblem) as caught:
        check_image(png(RED, (400, 300)), PHOTO, limits(app), None)
    assert caught.value.chinese.startswith("证件照应为竖版")
    # The ID card may lie either way.
    assert check_image(png(RED, (400, 300)), ID_CARD, limits(app), None).width == 400


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> DeepFaceMatcher:
    """The real adapter; the upload checks only use its HOG detector (no model loaded)."""
    return DeepFaceMatcher(FaceSettings(home=str(tmp_path_factory.mktemp("home"))))


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("two_people.jpg", ID_CARD, "检测到多张人脸，请确保照片中只有本人"),
        ("obama_partial_face.jpg", PHOTO, "人脸不完整，请确保整张脸都在照片内"),
        ("biden2.jpg", PHOTO, "证件照应为竖版（高度大于宽度），请重新拍摄或裁剪后上传"),
    ],
)
def test_real_photos_get_clear_rejections(
    app: Flask, detector: DeepFaceMatcher, name: str, kind: str, message: str
) -> None:
    with pytest.raises(ImageProblem) as caught:
        check_image((FACES / name).read_bytes(), kind, limits(app), detector)
    assert caught.value.chinese == message
    assert check_image((FACES / "obama.jpg").read_bytes(), kind, limits(app), detector).height == 1137


def test_a_bad_file_changes_nothing_already_saved(app: Flask, make_applicant, detector: DeepFaceMatcher) -> None:
    who = make_applicant()
    at_identity(who)
    obama, biden = (FACES / "obama.jpg").read_bytes(), (FACES / "biden.jpg").read_bytes()
    submit(app, who, obama, biden, detector)
    assert run_job(app, who, FaceAnswer(matched=False)) == "mismatch"
    before = record(who)
    saved = (dict(before.data), before.version, upload_count(), dict(storage().files))  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput) as caught:
        submit(app, who, obama, (FACES / "two_people.jpg").read_bytes(), detector)
    assert caught.value.fields == {ID_CARD: ["检测到多张人脸，请确保照片中只有本人"]}
    after = record(who)
    assert (dict(after.data), after.version, upload_count(), dict(storage().files)) == saved  # type: ignore[attr-defined]


def test_no_consent_no_upload_and_nothing_stored(app: Flask, make_applicant) -> None:
    who = make_applicant()
    at_identity(who, consent=False)
    with pytest.raises(GuardRefused) as caught:
        submit(app, who, png(RED), png(RED2))
    assert "请先阅读并同意人脸信息处理说明" in caught.value.reasons[0]
    assert upload_count() == 0 and not storage().files  # type: ignore[attr-defined]


def test_consent_is_recorded_in_data_and_history(app: Flask, make_applicant) -> None:
    who = make_applicant()
    at_identity(who)
    consent = record(who).data["identity"]["consent"]
    assert consent["given_at"].startswith("2026-12-01") and consent["by"] == who.actor.id
    event, state, payload = events(who)[-1]
    assert (event, state) == ("give_face_consent", "identity_pending")
    assert payload == {"agree": True, "consent_version": consent["version"]}


# ------------------------------------------------------------------ the job


class FaceAnswer:
    """A matcher double: a fixed answer, or an exception."""

    name = "answer"

    def __init__(self, *, matched: bool = True, error: Exception | None = None) -> None:
        self.matched, self.error, self.calls = matched, error, 0
        self.located: Any = None

    def detect(self, image: bytes) -> Any:
        raise AssertionError("the job does not detect")

    def verify(self, photo: bytes, id_card: bytes, located: Any = None) -> MatchResult:
        self.calls += 1
        self.located = located
        if self.error is not None:
            raise self.error
        return MatchResult(0.31 if self.matched else 0.82, Thresholds(0.415, 0.55), "Dlib")


def test_a_match_verifies_with_distance_threshold_and_model_in_the_history(app: Flask, make_applicant) -> None:
    who = make_applicant()
    at_identity(who)
    submit(app, who, png(RED), png(RED2))
    application = record(who)
    assert application.state == "face_checking"
    identity = application.data["identity"]
    photo = db.session.scalars(select(Upload).where(Upload.uid == identity["photo"])).one()
    card = db.session.scalars(select(Upload).where(Upload.uid == identity["id_card"])).one()
    assert (photo.kind, card.kind, identity["attempt"]) == ("photo", "id_card", 1)
    assert run_job(app, who) == "matched"
    assert record(who).state == "identity_verified"
    event, state, payload = events(who)[-1]
    assert (event, state) == ("face_matched", "identity_verified")
    assert payload["model"] == "fake-Dlib" and payload["distance"] < 0.1
    assert (payload["band"], payload["threshold"], payload["review_threshold"]) == ("pass", 0.415, 0.55)
    actor = db.session.scalars(select(HistoryEvent.actor).order_by(HistoryEvent.id.desc()).limit(1)).one()
    assert actor == "system:faces"
    # Idempotent: the same job again changes nothing.
    assert run_job(app, who) == "obsolete"
    assert len(events(who)) == 9


def test_mismatches_count_and_the_third_goes_to_the_manual_queue(app: Flask, make_applicant) -> None:
    who = make_applicant()
    at_identity(who)
    states = []
    for _ in range(3):
        submit(app, who, png(RED), png(BLUE))
        assert run_job(app, who) == "mismatch"
        states.append(record(who).state)
    assert states == ["identity_pending", "identity_pending", "manual_identity"]
    result = record(who).data["identity"]["result"]
    assert result["matched"] is False and result["reason"] == "人脸不一致" and result["distance"] > 0.55
    assert result["band"] == "mismatch" and record(who).data["identity"]["outcome"] == "mismatch"


def test_a_crash_is_retried_then_fails_clearly_and_gives_the_attempt_back(app: Flask, make_applicant) -> None:
    who = make_applicant()
    at_identity(who)
    submit(app, who, png(RED), png(RED2))
    crashing = FaceAnswer(error=RuntimeError("model exploded"))
    with pytest.raises(RuntimeError):
        run_job(app, who, crashing, final=False)  # the queue retries this
    assert record(who).state == "face_checking"
    assert run_job(app, who, crashing, final=True) == "failed"
    application = record(who)
    assert application.state == "identity_pending"
    assert application.data["identity"]["result"]["reason"] == UNAVAILABLE
    assert application.data["counters"]["face"] == 0
    assert events(who)[-1][0] == "face_check_failed"


def test_a_face_problem_in_the_worker_is_a_failure_with_the_reason(app: Flask, make_applicant) -> None:
    who = make_applicant()
    at_identity(who)
    submit(app, who, png(RED), png(RED2))
    # The stored ID card turns black (no face for the fake): the job names the problem.
    card = db.session.scalars(select(Upload).where(Upload.kind == "id_card")).one()
    storage().put(card.storage_key, png((0, 0, 0)))
    assert run_job(app, who) == "failed"
    assert record(who).data["identity"]["result"]["reason"].startswith("未检测到人脸")


def test_the_tick_queues_forgotten_jobs_and_requeues_or_fails_stuck_ones(app: Flask, make_applicant, clock) -> None:
    who = make_applicant()
    at_identity(who)
    submit(app, who, png(RED), png(RED2))
    queued: list[tuple[str, int]] = []
    enqueue = lambda name, outbox_id: queued.append((name, outbox_id))  # noqa: E731
    now = clock.now
    assert dispatch_jobs(db.session, enqueue, now) == 1
    assert dispatch_jobs(db.session, enqueue, now) == 0
    assert queued == [("face_match", job_ids(who)[-1])]
    eng = engine()

    def requeue(minutes: int) -> tuple[int, int]:
        at = now + timedelta(minutes=minutes)
        return requeue_stale_jobs(
            db.session, eng, enqueue, at,
            lease=timedelta(minutes=2), queue_wait=timedelta(minutes=5), max_dispatches=3,
        )  # fmt: skip

    # Not started: waiting in a long queue is fine until queue_wait says the queue lost it.
    assert [requeue(1), requeue(3), requeue(6)] == [(0, 0), (0, 0), (1, 0)]
    # A worker starts it and dies (a hard crash: the job neither answers nor gives up).
    clock.now = now + timedelta(minutes=7)
    with pytest.raises(RuntimeError):
        run_job(app, who, FaceAnswer(error=RuntimeError("killed")), final=False)
    assert [requeue(8), requeue(10)] == [(0, 0), (1, 0)]
    assert len(queued) == 3
    # The third dispatch got no answer either: 比对中 ends as a clear failure.
    assert requeue(16) == (0, 1)
    application = record(who)
    assert application.state == "identity_pending"
    assert application.data["identity"]["result"]["reason"] == "人脸比对超时，请重新上传"


# ------------------------------------------------------------------ manual path and staff


def test_no_id_card_manual_path_needs_no_consent_and_staff_decide(app: Flask, make_applicant, clock) -> None:
    who = make_applicant()
    application = at_identity(who, consent=False)
    with pytest.raises(InvalidInput) as caught:
        request_manual(
            db.session, storage(), engine(), application, who.actor, {}, no_id_card=True, note="",
            version=application.version, limits=limits(app),
        )  # fmt: skip
    assert caught.value.fields == {PHOTO: ["请上传证件照（用于人工认证和报名表）"]}
    request_manual(
        db.session, storage(), engine(), application, who.actor, {PHOTO: png(RED)}, no_id_card=True,
        note="身份证遗失，补办中", version=application.version, limits=limits(app),
    )  # fmt: skip
    application = record(who)
    identity = application.data["identity"]
    assert application.state == "manual_identity" and "id_card" not in identity and identity["photo"]
    assert identity["manual"]["no_id_card"] is True and identity["manual"]["note"] == "身份证遗失，补办中"
    eng = engine()
    eng.fire(who.application_id, "reject_identity", STAFF, {"reason": "证件照不清晰"})
    assert record(who).data["identity"]["review"]["reason"] == "证件照不清晰"
    application = record(who)
    request_manual(
        db.session, storage(), eng, application, who.actor, {}, no_id_card=True, note="",
        version=application.version, limits=limits(app),
    )  # fmt: skip
    eng.fire(who.application_id, "approve_identity", STAFF, {"note": ""})
    assert record(who).state == "identity_verified"
    assert [e for e, _, _ in events(who)][-4:] == [
        "request_manual_identity",
        "reject_identity",
        "request_manual_identity",
        "approve_identity",
    ]


# ------------------------------------------------------------------ retention


def verified(app: Flask, who: Applicant) -> Application:
    at_identity(who)
    submit(app, who, png(RED), png(RED2))
    assert run_job(app, who) == "matched"
    return record(who)


def test_the_id_card_is_deleted_after_the_grace_period_and_the_history_says_so(
    app: Flask, make_applicant, clock
) -> None:
    who = make_applicant()
    application = verified(app, who)
    identity = application.data["identity"]
    card = db.session.scalars(select(Upload).where(Upload.uid == identity["id_card"])).one()
    photo = db.session.scalars(select(Upload).where(Upload.uid == identity["photo"])).one()
    grace = timedelta(hours=72)
    assert purge_id_cards(db.session, engine(), storage(), clock.now + timedelta(hours=71), grace) == 0
    assert storage().exists(card.storage_key)
    later = clock.now + timedelta(hours=73)
    assert purge_id_cards(db.session, engine(), storage(), later, grace) == 1
    db.session.expire_all()
    assert not storage().exists(card.storage_key) and card.deleted_at is not None
    assert storage().exists(photo.storage_key) and photo.deleted_at is None  # kept for the 报名表
    event, state, payload = events(who)[-1]
    assert (event, state) == ("purge_id_card", "identity_verified")
    assert payload["uploads"] == [card.uid] and payload["retention_hours"] == 72
    assert record(who).data["identity"]["id_card_purged"]["uploads"] == [card.uid]
    # Done once: nothing more to delete, no second event.
    assert purge_id_cards(db.session, engine(), storage(), later + timedelta(hours=1), grace) == 0
    assert len(events(who)) == 10


def test_every_earlier_id_card_goes_too_but_not_while_a_payment_timer_runs(app: Flask, make_applicant, clock) -> None:
    who = make_applicant()
    at_identity(who)
    submit(app, who, png(RED), png(BLUE))
    run_job(app, who)
    submit(app, who, png(RED), png(RED2))
    run_job(app, who)
    engine().fire(who.application_id, "create_order", who.actor, {})
    grace = timedelta(hours=1)
    later = clock.now + timedelta(hours=2)
    assert purge_id_cards(db.session, engine(), storage(), later, grace) == 0  # payment_pending: timer armed
    engine().fire(who.application_id, "payment_expired", Actor.system("timer"), {}, now=later)
    assert purge_id_cards(db.session, engine(), storage(), later, grace) == 2
    cards = db.session.scalars(select(Upload).where(Upload.kind == "id_card")).all()
    assert len(cards) == 2 and all(c.deleted_at is not None for c in cards)


# ------------------------------------------------------------------ the Huey tasks


def test_the_identity_tick_queues_a_forgotten_job_and_the_task_answers(app: Flask, make_applicant) -> None:
    """With the queue in immediate mode the tick's dispatch runs gzsb.worker.tasks.face_match inline."""
    from gzsb.worker import tasks as jobs

    who = make_applicant()
    at_identity(who)
    submit(app, who, png(RED), png(RED2))  # FACE_DISPATCH is "none" in tests: nobody queued it
    jobs.use_app(app)
    jobs.huey.immediate = True
    try:
        counts = jobs.identity_tick.call_local()
    finally:
        jobs.huey.immediate = False
        jobs.use_app(None)
    assert counts == {"queued": 1, "requeued": 0, "failed": 0, "purged": 0}
    assert record(who).state == "identity_verified"
    assert events(who)[-1][0] == "face_matched"


def test_the_task_with_retries_left_lets_the_queue_retry(app: Flask, make_applicant) -> None:
    from gzsb.worker import tasks as jobs

    class Task:  # what Huey passes with context=True
        def __init__(self, retries: int) -> None:
            self.retries = retries

    who = make_applicant()
    at_identity(who)
    submit(app, who, png(RED), png(RED2))
    # A stored image that no longer decodes makes the matcher crash, as a broken model would.
    photo = db.session.scalars(select(Upload).where(Upload.kind == "photo")).one()
    storage().put(photo.storage_key, b"\x89PNG\r\n\x1a\n broken")
    jobs.use_app(app)
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever PIL raises: Huey retries it
            jobs.face_match.call_local(job_ids(who)[-1], task=Task(retries=2))
        assert record(who).state == "face_checking"
        assert jobs.face_match.call_local(job_ids(who)[-1], task=Task(retries=0)) == "failed"
    finally:
        jobs.use_app(None)
    result = record(who).data["identity"]["result"]
    assert record(who).state == "identity_pending" and result["reason"] == UNAVAILABLE
    assert "Error" in result["error"]  # the exception, for the logs and staff


def test_the_job_reuses_the_faces_the_upload_checks_found(app: Flask, make_applicant) -> None:
    """The check's detection is stored with the upload; the match gets it back (no second
    detector pass), and a malformed stored value just means detecting again."""
    who = make_applicant()
    at_identity(who)
    submit(app, who, png(RED), png(RED2))
    identity = record(who).data["identity"]
    photo = db.session.scalars(select(Upload).where(Upload.uid == identity["photo"])).one()
    card = db.session.scalars(select(Upload).where(Upload.uid == identity["id_card"])).one()
    photo.face = Located(640, (10, 20, 110, 120), ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10))).to_dict()
    card.face = {"max_side": 640, "box": "not a box"}
    db.session.commit()
    answer = FaceAnswer()
    assert run_job(app, who, answer) == "matched"
    assert answer.located == {"photo": Located(640, (10, 20, 110, 120), ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10)))}

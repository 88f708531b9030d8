"""Personal information rights and retention: withdrawing the face consent, deletion
requests, deadlines of every upload kind, orphaned files; and the manual request that needs
its images (through the JSON API too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gzsb.bootstrap import storage
from gzsb.errors import GuardRefused, InvalidInput
from gzsb.extensions import db
from gzsb.models import Application, HistoryEvent, Upload
from gzsb.worker.retention import delete_orphans, sweep
from tests.support import (
    CONSENT,
    MISMATCHED,
    PIXEL,
    SYSTEM,
    csrf_token,
    identity_uploads,
    log_in_student,
    to_confirming,
)


def data(who) -> dict:
    db.session.expire_all()
    return db.session.get(Application, who.application_id).data


def at_identity(eng, who) -> None:
    to_confirming(eng, who)
    eng.fire(who.application_id, "confirm_info", who.actor, {})


def upload(uid: str) -> Upload:
    return db.session.query(Upload).filter_by(uid=uid).one()


def test_withdrawing_the_face_consent_deletes_the_face_images_and_is_recorded(app, make_applicant, eng, clock) -> None:
    who = make_applicant()
    at_identity(eng, who)
    eng.fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    images = identity_uploads(who)
    eng.fire(who.application_id, "upload_identity", who.actor, images)
    eng.fire(who.application_id, "face_mismatch", SYSTEM, MISMATCHED)
    fired = eng.fire(who.application_id, "withdraw_face_consent", who.actor, {})
    identity = data(who)["identity"]
    assert "consent" not in identity and "photo" not in identity and "id_card" not in identity
    assert sorted(identity["consent_withdrawn"]["uploads"]) == sorted(images.values())
    event = db.session.query(HistoryEvent).filter_by(application_id=who.application_id, seq=fired.seq).one()
    assert event.event == "withdraw_face_consent"
    counts = sweep(db.session, storage(), clock(), app.config)
    assert counts["withdrawn"] == 2
    for uid in images.values():
        assert upload(uid).deleted_at is not None and not storage().exists(upload(uid).storage_key)
    # Face processing needs a new consent; the manual check stays open without one.
    with pytest.raises(GuardRefused):
        eng.fire(who.application_id, "upload_identity", who.actor, identity_uploads(who))
    again = eng.fire(who.application_id, "request_manual_identity", who.actor, identity_uploads(who))
    assert again.to_state == "manual_identity"


def test_there_is_nothing_to_withdraw_without_a_consent(app, make_applicant, eng) -> None:
    who = make_applicant()
    at_identity(eng, who)
    with pytest.raises(GuardRefused):
        eng.fire(who.application_id, "withdraw_face_consent", who.actor, {})


def test_a_manual_request_without_images_is_refused(app, make_applicant, eng) -> None:
    who = make_applicant()
    at_identity(eng, who)
    with pytest.raises(InvalidInput) as refused:
        eng.fire(who.application_id, "request_manual_identity", who.actor, {"note": "x"})
    assert set(refused.value.fields) == {"photo", "id_card"}
    with pytest.raises(InvalidInput) as no_photo:
        eng.fire(who.application_id, "request_manual_identity", who.actor, {"no_id_card": True})
    assert set(no_photo.value.fields) == {"photo"}
    assert db.session.get(Application, who.application_id).state == "identity_pending"


def test_a_manual_request_through_the_api_without_images_is_refused(app, make_applicant, eng) -> None:
    who = make_applicant()
    at_identity(eng, who)
    client = app.test_client()
    log_in_student(client, who)
    token = {"X-CSRFToken": csrf_token(client, "/application")}
    response = client.post("/api/application/events/request_manual_identity", json={"note": "x"}, headers=token)
    assert response.status_code == 422 and "请上传证件照" in str(response.get_json())
    assert db.session.get(Application, who.application_id).state == "identity_pending"


def test_a_deletion_request_is_recorded_and_served_as_far_as_the_record_allows(app, make_applicant, eng, clock) -> None:
    who = make_applicant()
    at_identity(eng, who)
    eng.fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    images = identity_uploads(who)
    with pytest.raises(InvalidInput):
        eng.fire(who.application_id, "request_data_deletion", who.actor, {})
    eng.fire(who.application_id, "request_data_deletion", who.actor, {"agree": True})
    assert data(who)["privacy"]["deletion_request"]["requested_at"]
    counts = sweep(db.session, storage(), clock(), app.config)
    assert counts["requested"] == 1
    assert upload(images["id_card"]).deleted_at is not None
    assert upload(images["photo"]).deleted_at is None  # printed on the 报名表: kept


def test_unsettled_id_cards_expire(app, make_applicant, eng, clock) -> None:
    who = make_applicant()
    at_identity(eng, who)
    images = identity_uploads(who)
    assert sweep(db.session, storage(), clock(), app.config)["expired"] == 0
    later = clock() + timedelta(days=app.config["UPLOAD_RETENTION_DAYS"]["id_card"] + 1)
    assert sweep(db.session, storage(), later, app.config)["expired"] == 1
    assert upload(images["id_card"]).deleted_at is not None and upload(images["photo"]).deleted_at is None


def test_orphaned_files_go_after_the_grace_period(app, make_applicant) -> None:
    who = make_applicant()
    images = identity_uploads(who)
    storage().put("photo/orphan/" + "a" * 32 + ".png", PIXEL.data)  # written, row never committed
    storage().put("evidence/keep/" + "b" * 32 + ".png", PIXEL.data)  # not an upload kind: untouched
    grace = timedelta(hours=1)
    now = datetime.now(UTC)  # storage stamps files with the real time, not the test clock
    assert delete_orphans(db.session, storage(), now + timedelta(minutes=5), grace) == 0
    assert delete_orphans(db.session, storage(), now + timedelta(days=2), grace) == 1
    assert not storage().exists("photo/orphan/" + "a" * 32 + ".png")
    assert storage().exists("evidence/keep/" + "b" * 32 + ".png")
    assert storage().exists(upload(images["photo"]).storage_key)

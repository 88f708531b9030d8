"""Steps and the guard of §2.9 through the engine: consent, upload, results, manual request, purge."""

from __future__ import annotations

import pytest

from gzsb.errors import GuardRefused, InvalidInput
from gzsb.extensions import db
from gzsb.models import Application, Outbox
from tests.support import CONSENT, MISMATCHED, SYSTEM, identity_uploads, to_confirming

STAFF_REASON = {"reason": "证件照不清晰"}


def data(who) -> dict:
    db.session.expire_all()
    return db.session.get(Application, who.application_id).data


def at_identity(eng, who) -> None:
    to_confirming(eng, who)
    eng.fire(who.application_id, "confirm_info", who.actor, {})


def test_consent_needs_the_tick_and_gates_the_upload(app, make_applicant, eng) -> None:
    who = make_applicant()
    at_identity(eng, who)
    with pytest.raises(GuardRefused) as refused:
        eng.fire(who.application_id, "upload_identity", who.actor, identity_uploads(who))
    assert refused.value.reasons == ["请先阅读并同意人脸信息处理说明，或选择【申请人工认证】"]
    with pytest.raises(InvalidInput) as unticked:
        eng.fire(who.application_id, "give_face_consent", who.actor, {})
    assert unticked.value.fields == {"agree": ["请先阅读并勾选人脸信息处理同意书"]}
    eng.fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    images = identity_uploads(who)
    fired = eng.fire(who.application_id, "upload_identity", who.actor, images)
    assert fired.to_state == "face_checking"
    identity = data(who)["identity"]
    assert (identity["photo"], identity["id_card"], identity["attempt"]) == (images["photo"], images["id_card"], 1)
    job = db.session.query(Outbox).filter_by(kind="job").one()
    uid = db.session.get(Application, who.application_id).uid
    assert job.payload == {"application": uid, "seq": fired.seq, "name": "face_match", "attempt": 1}
    assert job.sent_at is None  # queued after the commit by the web request or the tick


def test_a_mismatch_without_reason_gets_one_and_a_failure_gives_the_attempt_back(app, make_applicant, eng) -> None:
    who = make_applicant()
    at_identity(eng, who)
    eng.fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    eng.fire(who.application_id, "upload_identity", who.actor, identity_uploads(who))
    eng.fire(who.application_id, "face_mismatch", SYSTEM, {**MISMATCHED, "reason": ""})
    assert data(who)["identity"]["result"]["reason"] == "人脸不一致"
    assert data(who)["counters"]["face"] == 1
    eng.fire(who.application_id, "upload_identity", who.actor, identity_uploads(who))
    eng.fire(who.application_id, "face_check_failed", SYSTEM, {"error": "TimeoutError"})
    result = data(who)["identity"]["result"]
    assert result["reason"] == "人脸比对未能完成，请稍后重新上传" and result["error"] == "TimeoutError"
    assert data(who)["counters"]["face"] == 1


def test_the_manual_request_keeps_or_drops_the_id_card(app, make_applicant, eng) -> None:
    who = make_applicant()
    at_identity(eng, who)
    images = identity_uploads(who)
    eng.fire(who.application_id, "request_manual_identity", who.actor, images)
    identity = data(who)["identity"]
    assert (identity["photo"], identity["id_card"], identity["manual"]["no_id_card"]) == (
        images["photo"],
        images["id_card"],
        False,
    )
    staff = SYSTEM.__class__("account:900", "staff")
    eng.fire(who.application_id, "reject_identity", staff, STAFF_REASON)
    assert data(who)["identity"]["review"]["reason"] == "证件照不清晰"
    eng.fire(who.application_id, "request_manual_identity", who.actor, {"no_id_card": True, "note": "身份证遗失"})
    identity = data(who)["identity"]
    assert "id_card" not in identity and identity["photo"] == images["photo"] and "review" not in identity
    assert identity["manual"] == {"requested_at": identity["manual"]["requested_at"], "no_id_card": True,
                                  "note": "身份证遗失"}  # fmt: skip


def test_upload_ids_must_be_the_applications_own_live_uploads(app, make_applicant, eng) -> None:
    """The ids come from the client: another student's images, a made-up id, an image of the
    wrong kind or a deleted one are refused and nothing changes."""
    from gzsb.identity.steps import STALE_IMAGE
    from gzsb.models import Upload

    who, other = make_applicant(), make_applicant()
    at_identity(eng, who)
    eng.fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    theirs = identity_uploads(other)
    mine = identity_uploads(who)
    deleted = identity_uploads(who, ("id_card",))
    db.session.get(
        Upload, db.session.query(Upload.id).filter_by(uid=deleted["id_card"]).scalar()
    ).deleted_at = db.session.get(Application, who.application_id).created_at
    db.session.commit()
    before = data(who)
    for payload, refused in (
        (theirs, {"photo", "id_card"}),
        ({"photo": mine["photo"], "id_card": "0" * 32}, {"id_card"}),
        ({"photo": mine["id_card"], "id_card": mine["photo"]}, {"photo", "id_card"}),
        ({**mine, **deleted}, {"id_card"}),
    ):
        with pytest.raises(InvalidInput) as caught:
            eng.fire(who.application_id, "upload_identity", who.actor, payload)
        assert caught.value.fields == {kind: [STALE_IMAGE] for kind in refused}
        with pytest.raises(InvalidInput):
            eng.fire(who.application_id, "request_manual_identity", who.actor, payload)
    assert data(who) == before and db.session.get(Application, who.application_id).state == "identity_pending"
    assert eng.fire(who.application_id, "upload_identity", who.actor, mine).to_state == "face_checking"

"""Steps and the guard of §2.9 through the engine: consent, upload, results, manual request, purge."""

from __future__ import annotations

import pytest

from gzsb.errors import GuardRefused, InvalidInput
from gzsb.extensions import db
from gzsb.models import Application, Outbox
from tests.support import CONSENT, MISMATCHED, SYSTEM, UPLOAD, to_confirming

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
        eng.fire(who.application_id, "upload_identity", who.actor, UPLOAD)
    assert refused.value.reasons == ["请先阅读并同意人脸信息处理说明，或选择【申请人工认证】"]
    with pytest.raises(InvalidInput) as unticked:
        eng.fire(who.application_id, "give_face_consent", who.actor, {})
    assert unticked.value.fields == {"agree": ["请先阅读并勾选人脸信息处理同意书"]}
    eng.fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    fired = eng.fire(who.application_id, "upload_identity", who.actor, UPLOAD)
    assert fired.to_state == "face_checking"
    identity = data(who)["identity"]
    assert (identity["photo"], identity["id_card"], identity["attempt"]) == ("p1", "c1", 1)
    job = db.session.query(Outbox).filter_by(kind="job").one()
    uid = db.session.get(Application, who.application_id).uid
    assert job.payload == {"application": uid, "seq": fired.seq, "name": "face_match", "attempt": 1}
    assert job.sent_at is None  # queued after the commit by the web request or the tick


def test_a_mismatch_without_reason_gets_one_and_a_failure_gives_the_attempt_back(app, make_applicant, eng) -> None:
    who = make_applicant()
    at_identity(eng, who)
    eng.fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    eng.fire(who.application_id, "upload_identity", who.actor, UPLOAD)
    eng.fire(who.application_id, "face_mismatch", SYSTEM, {**MISMATCHED, "reason": ""})
    assert data(who)["identity"]["result"]["reason"] == "人脸不一致"
    assert data(who)["counters"]["face"] == 1
    eng.fire(who.application_id, "upload_identity", who.actor, UPLOAD)
    eng.fire(who.application_id, "face_check_failed", SYSTEM, {"error": "TimeoutError"})
    result = data(who)["identity"]["result"]
    assert result["reason"] == "人脸比对未能完成，请稍后重新上传" and result["error"] == "TimeoutError"
    assert data(who)["counters"]["face"] == 1


def test_the_manual_request_keeps_or_drops_the_id_card(app, make_applicant, eng) -> None:
    who = make_applicant()
    at_identity(eng, who)
    eng.fire(who.application_id, "request_manual_identity", who.actor, {"photo": "p9", "id_card": "c9"})
    identity = data(who)["identity"]
    assert (identity["photo"], identity["id_card"], identity["manual"]["no_id_card"]) == ("p9", "c9", False)
    staff = SYSTEM.__class__("account:900", "staff")
    eng.fire(who.application_id, "reject_identity", staff, STAFF_REASON)
    assert data(who)["identity"]["review"]["reason"] == "证件照不清晰"
    eng.fire(who.application_id, "request_manual_identity", who.actor, {"no_id_card": True, "note": "身份证遗失"})
    identity = data(who)["identity"]
    assert "id_card" not in identity and identity["photo"] == "p9" and "review" not in identity
    assert identity["manual"] == {"requested_at": identity["manual"]["requested_at"], "no_id_card": True,
                                  "note": "身份证遗失"}  # fmt: skip

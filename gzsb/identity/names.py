"""Flow names the identity area relies on (身份认证: consent, face match, manual check)."""

from __future__ import annotations

from gzsb.workflow.needs import NEEDS

need = NEEDS.area("identity")

IDENTITY_PENDING = need.state("identity_pending", "the upload page; ID-card images are kept while in it")
FACE_CHECKING = need.state("face_checking", "waiting for the face-match job, whose result is applied only here")
MANUAL_IDENTITY = need.state("manual_identity", "the manual identity check at the confirmation point")
IDENTITY_VERIFIED = need.state("identity_verified", "identity settled: starts the ID-card retention period")

FACE_ATTEMPTS = need.setting("face_attempts", "how many face uploads the page tells the student are left")
FACE_DAILY_ATTEMPTS = need.setting("face_daily_attempts", "face comparisons per ID number per day (all applications)")

GIVE_FACE_CONSENT = need.event("give_face_consent", "the consent form before any face processing")
UPLOAD_IDENTITY = need.event("upload_identity", "the 【上传认证】 button: stores the images, queues the match")
REQUEST_MANUAL_IDENTITY = need.event("request_manual_identity", "the 【申请人工认证】 button")
FACE_MATCHED = need.event("face_matched", "fired by the face-match job when the faces match")
FACE_REVIEW = need.event("face_review", "fired by the face-match job in the review band: staff compare the images")
FACE_MISMATCH = need.event("face_mismatch", "fired by the face-match job when they do not")
FACE_CHECK_FAILED = need.event("face_check_failed", "fired when the face-match job gives up")
PURGE_ID_CARD = need.event("purge_id_card", "recorded when the retention job deletes the ID-card images")
WITHDRAW_FACE_CONSENT = need.event(
    "withdraw_face_consent", "the student withdraws the face consent: the face images go, the manual path stays"
)
REQUEST_DATA_DELETION = need.event("request_data_deletion", "the student asks for their personal data to be deleted")
# Retention (gzsb/worker/retention.py) keeps material photos while staff review them.
MATERIALS_REVIEW = need.state("materials_review", "material photos are kept while the confirmation point reviews them")

# Events only their own route may fire: 【上传认证】 checks every photo (one face, size, blur,
# pose, 证件照 layout) before the step stores them; the generic event routes would skip that.
OWN_ROUTE_EVENTS = frozenset({UPLOAD_IDENTITY})

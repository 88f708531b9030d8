"""Helpers of the 上传审核 and staff console tests: images, uploads, staff, applicants in queues."""

from __future__ import annotations

import io
import itertools
from typing import Any

from gzsb.accounts.service import create_account
from gzsb.bootstrap import storage, vault
from gzsb.cli.demo import id_number
from gzsb.common.uploads import accept_image, store_image
from gzsb.extensions import db
from gzsb.materials.service import live_materials
from gzsb.models import Account, Application, ConfirmationPoint, CorrectionRequest, Upload
from gzsb.staff.steps import required_documents
from gzsb.workflow.engine import Actor
from tests.drive import flow_of
from tests.support import MATCHED, MISMATCHED, PASSWORD_HASH, SYSTEM, Applicant, pay, student_payload, to_confirming

_staff_numbers = itertools.count(1)


def png(width: int = 60, height: int = 80, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def add_upload(
    application_id: int, kind: str = "material", data: bytes | None = None, slot: str | None = None
) -> Upload:
    """A stored upload; a material goes into ``slot``, by default the applicant's first
    document without a live photo (else its first document: tests replace photos freely)."""
    app = db.session.get(Application, application_id)
    image = accept_image(data or png(), max_bytes=1 << 20, max_pixels=1 << 22)
    upload = store_image(db.session, storage(), application_id=app.id, application_uid=app.uid, kind=kind, image=image)
    if kind == "material":
        upload.slot = free_slot(app) if slot is None else slot
    db.session.commit()
    return upload


def material_files(application_id: int) -> list[str]:
    """A new photo for each of the applicant's documents: a complete 【提交审核】."""
    app = db.session.get(Application, application_id)
    documents = required_documents(flow_of(application_id), app.data or {})
    return [add_upload(application_id, slot=d.key).uid for d in documents] or [add_upload(application_id).uid]


def free_slot(app: Application) -> str:
    taken = {u.slot for u in live_materials(db.session, app.id) if u.slot}
    documents = required_documents(flow_of(app.id), app.data or {})
    free = [d.key for d in documents if d.key not in taken]
    return (free or [d.key for d in documents] or [""])[0]


def point_id(code: str) -> int:
    return db.session.query(ConfirmationPoint.id).filter_by(code=code).scalar()


def make_staff(code: str = "NK01", name: str = "王老师") -> Account:
    number = next(_staff_numbers)
    account = create_account(
        db.session,
        vault(),
        name=name,
        id_number=id_number(f"12010419750101{number % 1000:03d}"),
        password_hash=PASSWORD_HASH,
        role="staff",
        confirmation_point_id=point_id(code),
    )
    db.session.commit()
    return account


def staff_actor(account: Account) -> Actor:
    return Actor(f"account:{account.id}", "staff")


def to_identity(eng: Any, who: Applicant) -> dict[str, str]:
    """Confirmed, consent given, identity images stored: ready for upload_identity."""
    to_confirming(eng, who)
    return identity_from_confirming(eng, who)


def identity_from_confirming(eng: Any, who: Applicant) -> dict[str, str]:
    eng.fire(who.application_id, "confirm_info", who.actor, {})
    if flow_of(who.application_id).branches("give_face_consent", "identity_pending"):
        eng.fire(who.application_id, "give_face_consent", who.actor, {"agree": True})
    return {
        "photo": add_upload(who.application_id, "photo").uid,
        "id_card": add_upload(who.application_id, "id_card").uid,
    }


def to_materials_pending(eng: Any, who: Applicant) -> None:
    """A 退役士兵 applicant (make_applicant(category="退役士兵")) who has paid."""
    images = to_identity(eng, who)
    eng.fire(who.application_id, "upload_identity", who.actor, images)
    eng.fire(who.application_id, "face_matched", SYSTEM, MATCHED)
    eng.fire(who.application_id, "create_order", who.actor, {})
    assert pay(eng, who).to_state == "materials_pending"


def to_materials_review(eng: Any, who: Applicant, count: int = 2) -> list[str]:
    to_materials_pending(eng, who)
    uids = [add_upload(who.application_id).uid for _ in range(count)]
    eng.fire(who.application_id, "submit_materials", who.actor, {"files": uids})
    return uids


def to_manual_identity(eng: Any, who: Applicant) -> dict[str, str]:
    """Identity uploads stored, the face check failed three times: the manual queue."""
    images = to_identity(eng, who)
    for _ in range(3):
        eng.fire(who.application_id, "upload_identity", who.actor, images)
        eng.fire(who.application_id, "face_mismatch", SYSTEM, MISMATCHED)
    assert db.session.get(Application, who.application_id).state == "manual_identity"
    return images


def with_correction(eng: Any, who: Applicant, evidence: bytes | None = None) -> CorrectionRequest:
    """An applicant in 志愿 who reported 信息有误 with one stored evidence image."""
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    eng.fire(who.application_id, "check_xueji", who.actor, {})
    app = db.session.get(Application, who.application_id)
    name = "ab" * 16 + ".png"
    storage().put(f"evidence/{app.uid}/{name}", evidence or png(color=(0, 90, 200)))
    eng.fire(who.application_id, "report_xueji_error", who.actor, {"problem": "毕业年份应为2026年", "evidence": [name]})
    return db.session.query(CorrectionRequest).filter_by(application_id=who.application_id).one()


def fresh(application_id: int) -> Application:
    db.session.expire_all()
    return db.session.get(Application, application_id)

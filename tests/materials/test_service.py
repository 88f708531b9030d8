from __future__ import annotations

import pytest

from gzsb.bootstrap import storage
from gzsb.errors import ConflictError, NotFound
from gzsb.extensions import db
from gzsb.materials.service import add_material, live_materials, page_facts, remove_material
from tests.drive import flow_of
from tests.review_support import add_upload, fresh, png, to_materials_pending, to_materials_review


def discharge(who) -> dict:
    """The 退役证 slot of a 退役士兵 applicant."""
    return {"slot": "discharge_certificate", "flow": flow_of(who.application_id)}


def test_photos_change_only_while_materials_are_awaited(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    to_materials_pending(eng, who)
    app_row = fresh(who.application_id)
    upload = add_material(
        db.session, storage(), app_row, png(), max_bytes=1 << 20, max_pixels=1 << 20, **discharge(who)
    )
    db.session.commit()
    assert upload.kind == "material" and storage().exists(upload.storage_key)
    assert [u.uid for u in live_materials(db.session, who.application_id)] == [upload.uid]

    eng.fire(who.application_id, "submit_materials", who.actor, {"files": [upload.uid]})
    in_review = fresh(who.application_id)
    with pytest.raises(ConflictError):
        add_material(db.session, storage(), in_review, png(), max_bytes=1 << 20, max_pixels=1 << 20, **discharge(who))
    with pytest.raises(ConflictError):
        remove_material(db.session, storage(), in_review, upload.uid, eng.clock())
    facts = page_facts(db.session, in_review)
    assert facts["sent"] == [upload.uid] and facts["round"] == 1 and facts["review"] is None


def test_removing_someone_elses_photo_is_not_found(app, make_applicant, eng) -> None:
    owner, other = make_applicant(category="退役士兵"), make_applicant(category="退役士兵")
    to_materials_review(eng, owner)
    to_materials_pending(eng, other)
    theirs = live_materials(db.session, owner.application_id)[0]
    with pytest.raises(NotFound):
        remove_material(db.session, storage(), fresh(other.application_id), theirs.uid, eng.clock())
    photo = add_upload(other.application_id, "photo")
    with pytest.raises(NotFound):  # not a material photo
        remove_material(db.session, storage(), fresh(other.application_id), photo.uid, eng.clock())
    assert storage().exists(theirs.storage_key) and storage().exists(photo.storage_key)

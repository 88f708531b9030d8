from __future__ import annotations

import io
import re
from dataclasses import replace
from types import MappingProxyType

import pytest
from PIL import Image

from gzsb.bootstrap import storage
from gzsb.common.uploads import ImageProblem
from gzsb.extensions import db
from gzsb.materials.service import add_material
from gzsb.models import Upload
from tests.drive import flow_of
from tests.enrollment.test_views import TOKEN, login
from tests.review_support import add_upload, fresh, make_staff, png, staff_actor, to_materials_pending

THUMB = re.compile(r'src="/application/materials/([0-9a-f]{32})"')


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (60, 80), (10, 120, 10)).save(out, "JPEG")
    return out.getvalue()


def token(client) -> str:
    return TOKEN.search(client.get("/application").get_data(as_text=True)).group(1)


def upload(client, data: bytes, name: str = "退役证.png", csrf: str | None = None, slot: str = "discharge_certificate"):
    form = {"file": (io.BytesIO(data), name), "slot": slot}
    if csrf is not False:
        form["csrf_token"] = csrf or token(client)
    return client.post("/application/materials", data=form, content_type="multipart/form-data")


def submit(client, uids: list[str], version: int):
    data = {"csrf_token": token(client), "version": version, "files[]": uids}
    return client.post("/application/events/submit_materials", data=data)


def test_add_remove_and_submit_materials(app, make_applicant, eng) -> None:
    """A 退役士兵 without a 学籍 record: one named slot per document of the flow's materials."""
    who = make_applicant(category="退役士兵", in_registry=False)
    to_materials_pending(eng, who)
    client = app.test_client()
    login(client, who)
    page = client.get("/application").get_data(as_text=True)
    assert "上传审核材料" in page and "考生类别：退役士兵" in page
    for label in ("退役证", "学历认证报告", "毕业证书"):
        assert f"上传{label}" in page  # its own 【+】
    assert "《退出现役证》或《士兵退役证》" in page and "格式：JPG或PNG" in page
    assert "disabled>提交审核" in page and "尚未上传：退役证、学历认证报告" in page

    assert upload(client, png()).status_code == 302
    taken = upload(client, png(color=(0, 200, 0)))
    assert taken.status_code == 422 and "“退役证”已上传，如需更换请先删除原照片" in taken.get_data(as_text=True)
    assert upload(client, png(), slot="").status_code == 422  # a photo belongs to a named document
    assert upload(client, png(), slot="no_such_document").status_code == 404
    assert upload(client, png(color=(0, 0, 200)), slot="degree_report").status_code == 302
    page = client.get("/application").get_data(as_text=True)
    uids = THUMB.findall(page)
    assert len(set(uids)) == 2 and "已上传的材料（2/3）" in page and "尚未上传" not in page
    assert 'alt="退役证"' in page and 'alt="学历认证报告"' in page and "disabled>提交审核" not in page
    slots = {u.uid: u.slot for u in db.session.query(Upload).filter_by(kind="material")}
    assert sorted(slots.values()) == ["degree_report", "discharge_certificate"]

    image = client.get(f"/application/materials/{uids[0]}")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.headers["Content-Disposition"].startswith("attachment")

    report = next(uid for uid, slot in slots.items() if slot == "degree_report")
    removed = client.post(f"/application/materials/{report}/delete", data={"csrf_token": token(client)})
    assert removed.status_code == 302
    row = db.session.query(Upload).filter_by(uid=report).one()
    assert row.deleted_at is not None and not storage().exists(row.storage_key)
    assert client.get(f"/application/materials/{report}").status_code == 404
    page = client.get("/application").get_data(as_text=True)
    assert "尚未上传：学历认证报告" in page
    # The step refuses an incomplete set whatever the browser sends.
    discharge = next(uid for uid, slot in slots.items() if slot == "discharge_certificate")
    incomplete = submit(client, [discharge], fresh(who.application_id).version)
    assert incomplete.status_code == 422 and "请上传：学历认证报告" in incomplete.get_data(as_text=True)
    assert fresh(who.application_id).state == "materials_pending"

    assert upload(client, png(color=(0, 90, 90)), slot="degree_report").status_code == 302
    uids = sorted(set(THUMB.findall(client.get("/application").get_data(as_text=True))))
    sent = submit(client, uids, fresh(who.application_id).version)
    assert sent.status_code == 302
    assert fresh(who.application_id).state == "materials_review"
    section = fresh(who.application_id).data["materials"]
    assert sorted(section["slots"].values()) == ["degree_report", "discharge_certificate"]
    review = client.get("/application").get_data(as_text=True)
    assert "审核中" in review and "已提交的材料（2张）" in review
    assert '<span class="caption">退役证</span>' in review and '<span class="caption">学历认证报告</span>' in review
    # In review nothing can change any more.
    assert upload(client, png()).status_code == 409
    assert (
        client.post(f"/application/materials/{uids[0]}/delete", data={"csrf_token": token(client)}).status_code == 409
    )


def test_a_png_only_slot_refuses_a_jpeg(app, make_applicant, eng) -> None:
    """Accepted types are per document, from the flow (checked by content, not by name)."""
    who = make_applicant(category="退役士兵")
    to_materials_pending(eng, who)
    flow = flow_of(who.application_id)
    documents = dict(flow.materials.documents)
    documents["discharge_certificate"] = replace(documents["discharge_certificate"], types=("png",))
    narrowed = replace(flow, materials=replace(flow.materials, documents=MappingProxyType(documents)))
    row = fresh(who.application_id)
    with pytest.raises(ImageProblem) as refused:
        add_material(
            db.session,
            storage(),
            row,
            jpeg(),
            max_bytes=1 << 20,
            max_pixels=1 << 20,
            slot="discharge_certificate",
            flow=narrowed,
        )
    assert refused.value.chinese == "“退役证”请上传PNG格式的照片"
    stored = add_material(
        db.session,
        storage(),
        row,
        png(),
        max_bytes=1 << 20,
        max_pixels=1 << 20,
        slot="discharge_certificate",
        flow=narrowed,
    )
    assert stored.slot == "discharge_certificate"


def test_refused_files_say_why_and_store_nothing(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    to_materials_pending(eng, who)
    client = app.test_client()
    login(client, who)
    before = dict(storage().files)

    not_image = upload(client, b"%PDF-1.4 not an image", "a.png")
    assert not_image.status_code == 422 and "仅支持JPG或PNG格式的图片" in not_image.get_data(as_text=True)

    app.config["UPLOAD_MAX_PIXELS"] = 100 * 100
    bomb = upload(client, png(200, 200))
    assert bomb.status_code == 422 and "图片尺寸过大" in bomb.get_data(as_text=True)

    app.config["UPLOAD_MAX_BYTES"] = 1024 * 1024
    big = upload(client, b"\x89PNG\r\n\x1a\n" + b"0" * (1024 * 1024 + 70 * 1024))
    assert big.status_code == 413 and "图片不能超过1MB" in big.get_data(as_text=True)

    nothing = client.post("/application/materials", data={"csrf_token": token(client)})
    assert nothing.status_code == 422 and "请选择要上传的材料照片" in nothing.get_data(as_text=True)
    assert upload(client, png(), csrf=False).status_code == 400  # no CSRF token
    assert storage().files == before
    assert db.session.query(Upload).filter_by(kind="material").count() == 0


def test_at_most_ten_photos(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    to_materials_pending(eng, who)
    for _ in range(10):
        add_upload(who.application_id)
    client = app.test_client()
    login(client, who)
    assert "上传退役证" not in client.get("/application").get_data(as_text=True)
    refused = upload(client, png())
    assert refused.status_code == 422 and "最多上传10张材料照片" in refused.get_data(as_text=True)


def test_another_students_uploads_are_out_of_reach(app, make_applicant, eng) -> None:
    owner = make_applicant(category="退役士兵")
    intruder = make_applicant(category="退役士兵")
    to_materials_pending(eng, owner)
    to_materials_pending(eng, intruder)
    theirs = add_upload(owner.application_id)
    identity = db.session.query(Upload).filter_by(application_id=intruder.application_id, kind="photo").first()
    client = app.test_client()
    login(client, intruder)
    assert client.get(f"/application/materials/{theirs.uid}").status_code == 404
    # Their own identity photo is not a material either.
    assert client.get(f"/application/materials/{identity.uid}").status_code == 404
    gone = client.post(f"/application/materials/{theirs.uid}/delete", data={"csrf_token": token(client)})
    assert gone.status_code == 404
    db.session.expire_all()
    assert db.session.get(Upload, theirs.id).deleted_at is None and storage().exists(theirs.storage_key)
    refused = submit(client, [theirs.uid], fresh(intruder.application_id).version)
    assert refused.status_code == 422 and "部分材料已删除或无效" in refused.get_data(as_text=True)
    assert fresh(intruder.application_id).state == "materials_pending"
    assert fresh(owner.application_id).state == "materials_pending"


def test_rejected_materials_show_the_reason_and_can_be_resubmitted(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    to_materials_pending(eng, who)
    first = add_upload(who.application_id).uid
    eng.fire(who.application_id, "submit_materials", who.actor, {"files": [first]})
    eng.fire(who.application_id, "reject_materials", staff_actor(make_staff()), {"reason": "材料不清晰：请重新拍摄"})
    client = app.test_client()
    login(client, who)
    page = client.get("/application").get_data(as_text=True)
    assert "材料审核未通过" in page and "原因：材料不清晰：请重新拍摄" in page and first in page
    assert client.post(f"/application/materials/{first}/delete", data={"csrf_token": token(client)}).status_code == 302
    assert upload(client, png(color=(9, 9, 9))).status_code == 302
    uids = THUMB.findall(client.get("/application").get_data(as_text=True))
    assert first not in uids and len(set(uids)) == 1
    assert submit(client, sorted(set(uids)), fresh(who.application_id).version).status_code == 302
    assert fresh(who.application_id).state == "materials_review"

from __future__ import annotations

import io
import re

from gzsb.bootstrap import storage
from gzsb.extensions import db
from gzsb.models import Upload
from tests.enrollment.test_views import TOKEN, login
from tests.review_support import add_upload, fresh, make_staff, png, staff_actor, to_materials_pending

THUMB = re.compile(r'src="/application/materials/([0-9a-f]{32})"')


def token(client) -> str:
    return TOKEN.search(client.get("/application").get_data(as_text=True)).group(1)


def upload(client, data: bytes, name: str = "退役证.png", csrf: str | None = None):
    form = {"file": (io.BytesIO(data), name)}
    if csrf is not False:
        form["csrf_token"] = csrf or token(client)
    return client.post("/application/materials", data=form, content_type="multipart/form-data")


def submit(client, uids: list[str], version: int):
    data = {"csrf_token": token(client), "version": version, "files[]": uids}
    return client.post("/application/events/submit_materials", data=data)


def test_add_remove_and_submit_materials(app, make_applicant, eng) -> None:
    who = make_applicant(category="退役士兵")
    to_materials_pending(eng, who)
    client = app.test_client()
    login(client, who)
    page = client.get("/application").get_data(as_text=True)
    assert "上传审核材料" in page and "添加材料照片" in page and "考生类别“退役士兵”的证明材料" in page
    assert "提交审核" in page and "disabled>提交审核" in page  # nothing to send yet

    assert upload(client, png()).status_code == 302
    assert upload(client, png(color=(0, 200, 0))).status_code == 302
    page = client.get("/application").get_data(as_text=True)
    uids = THUMB.findall(page)
    assert len(set(uids)) == 2 and "已上传的材料（2/10）" in page

    image = client.get(f"/application/materials/{uids[0]}")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert image.headers["Content-Disposition"].startswith("attachment")

    removed = client.post(f"/application/materials/{uids[1]}/delete", data={"csrf_token": token(client)})
    assert removed.status_code == 302
    row = db.session.query(Upload).filter_by(uid=uids[1]).one()
    assert row.deleted_at is not None and not storage().exists(row.storage_key)
    assert client.get(f"/application/materials/{uids[1]}").status_code == 404
    page = client.get("/application").get_data(as_text=True)
    assert set(THUMB.findall(page)) == {uids[0]}

    sent = submit(client, [uids[0]], fresh(who.application_id).version)
    assert sent.status_code == 302
    assert fresh(who.application_id).state == "materials_review"
    review = client.get("/application").get_data(as_text=True)
    assert "审核中" in review and uids[0] in review and "已提交的材料（1张）" in review
    # In review nothing can change any more.
    assert upload(client, png()).status_code == 409
    assert (
        client.post(f"/application/materials/{uids[0]}/delete", data={"csrf_token": token(client)}).status_code == 409
    )


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
    assert "添加材料照片" not in client.get("/application").get_data(as_text=True)
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
    assert upload(client, png(color=(9, 9, 9))).status_code == 302
    uids = THUMB.findall(client.get("/application").get_data(as_text=True))
    assert first in uids and len(set(uids)) == 2
    assert submit(client, sorted(set(uids)), fresh(who.application_id).version).status_code == 302
    assert fresh(who.application_id).state == "materials_review"

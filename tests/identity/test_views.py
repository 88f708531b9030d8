"""The 身份认证 pages in the Flask test client: consent, 【上传认证】, 比对中 and its status,
认证成功, failure reasons, the manual path, limits; and a web process that never imports
TensorFlow (or deepface) while serving them."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from flask import Flask
from PIL import Image
from sqlalchemy import func, select

from gzsb.adapters.faces import face_matcher
from gzsb.bootstrap import engine, storage
from gzsb.cli.demo import demo_student
from gzsb.common.uploads import accept_image, store_image
from gzsb.config import ROOT
from gzsb.extensions import db
from gzsb.identity.service import run_face_job
from gzsb.models import Application, Outbox, Upload
from gzsb.workflow.engine import Actor
from tests.support import Applicant, to_confirming

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
RED, RED2, BLUE = (200, 40, 40), (205, 45, 35), (40, 40, 200)
STAFF = Actor("account:900", "staff")


def png(colour: tuple[int, int, int], size: tuple[int, int] = (300, 400)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def token(client, path: str = "/application") -> str:
    match = TOKEN.search(client.get(path).get_data(as_text=True))
    assert match, f"{path} has no CSRF token"
    return match.group(1)


def application(who: Applicant) -> Application:
    db.session.expire_all()
    row = db.session.get(Application, who.application_id)
    assert row is not None
    return row


def student(app: Flask, who: Applicant):
    to_confirming(engine(), who)
    engine().fire(who.application_id, "confirm_info", who.actor, {})
    client = app.test_client()
    number = demo_student(who.index).id_number
    response = client.post(
        "/login", data={"login": number, "password": who.password, "csrf_token": token(client, "/login")}
    )
    assert response.status_code == 302
    return client


def consent(client, who: Applicant):
    data = {"csrf_token": token(client), "version": application(who).version, "agree": "true"}
    return client.post("/application/events/give_face_consent", data=data)


def upload(client, who: Applicant, photo: bytes | None, id_card: bytes | None, **extra):
    data = {"csrf_token": token(client), "version": application(who).version, **extra}
    if photo is not None:
        data["photo"] = (io.BytesIO(photo), "photo.png")
    if id_card is not None:
        data["id_card"] = (io.BytesIO(id_card), "card.png")
    return client.post("/application/identity/upload", data=data, content_type="multipart/form-data")


def run_job(app: Flask, who: Applicant) -> str:
    outbox_id = db.session.scalars(
        select(Outbox.id).where(Outbox.application_id == who.application_id, Outbox.kind == "job").order_by(Outbox.id)
    ).all()[-1]
    return run_face_job(db.session, engine(), storage(), face_matcher(app.config), outbox_id, final=True)


def test_consent_upload_checking_and_success(app: Flask, make_applicant) -> None:
    who = make_applicant()
    client = student(app, who)
    page = client.get("/application").get_data(as_text=True)
    assert "人脸信息处理说明" in page and "同意并继续" in page and "申请人工认证" in page
    assert 'action="/application/identity/upload"' not in page  # no upload before consent
    assert consent(client, who).status_code == 302
    page = client.get("/application").get_data(as_text=True)
    assert 'action="/application/identity/upload"' in page and "上传认证" in page
    # No capture attribute: phones offer the photo library, not only the camera (issue 13).
    assert "capture=" not in page and 'accept="image/jpeg,image/png"' in page and "identity.js" in page
    assert 'class="upload-progress"' in page and "上传中" in page

    response = upload(client, who, png(RED), png(RED2))
    assert response.status_code == 302
    assert application(who).state == "face_checking"
    page = client.get("/application").get_data(as_text=True)
    assert "比对中" in page and 'data-status-url="/application/status"' in page
    assert 'http-equiv="refresh"' in page and "/application/identity/result" in page
    status = client.get("/application/status")
    assert status.get_json()["state"] == "face_checking" and status.headers["Cache-Control"] == "no-store"
    # Still checking: the result page sends the student back to 比对中.
    assert client.get("/application/identity/result").headers["Location"].endswith("/application")

    assert run_job(app, who) == "matched"
    assert client.get("/application/status").get_json()["state"] == "identity_verified"
    result = client.get("/application/identity/result")
    assert result.status_code == 200 and "认证成功" in result.get_data(as_text=True)


def test_a_mismatch_shows_the_reason_and_the_attempts_left(app: Flask, make_applicant) -> None:
    who = make_applicant()
    client = student(app, who)
    consent(client, who)
    upload(client, who, png(RED), png(BLUE))
    assert run_job(app, who) == "mismatch"
    page = client.get("/application").get_data(as_text=True)
    assert "上次认证未通过：人脸不一致" in page and "您还可以上传认证2次" in page
    assert client.get("/application/identity/result").headers["Location"].endswith("/application")


def test_bad_files_are_refused_with_chinese_reasons_and_nothing_is_stored(app: Flask, make_applicant) -> None:
    who = make_applicant()
    client = student(app, who)
    consent(client, who)
    before = application(who).version
    response = upload(client, who, png(RED, (400, 300)), b"GIF89a not allowed")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "证件照应为竖版" in page and "仅支持JPG或PNG格式的图片" in page
    missing = upload(client, who, png(RED), None)
    assert missing.status_code == 422 and "请选择身份证人像面图片" in missing.get_data(as_text=True)
    black = upload(client, who, png(RED), png((0, 0, 0)))  # the fake finds no face in black
    assert black.status_code == 422 and "未检测到人脸" in black.get_data(as_text=True)
    assert application(who).version == before and application(who).state == "identity_pending"
    assert db.session.scalar(select(func.count(Upload.id))) == 0 and not storage().files  # type: ignore[attr-defined]


def test_upload_without_consent_is_refused(app: Flask, make_applicant) -> None:
    who = make_applicant()
    client = student(app, who)
    response = upload(client, who, png(RED), png(RED2))
    assert response.status_code == 422
    assert "请先阅读并同意人脸信息处理说明" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Upload.id))) == 0


def test_the_body_is_capped_before_reading_and_csrf_is_checked(app: Flask, make_applicant) -> None:
    who = make_applicant()
    client = student(app, who)
    consent(client, who)
    app.config["UPLOAD_MAX_BYTES"] = 10_000
    # Over one image's cap: refused when read, with the cap in the message.
    one = upload(client, who, png(RED), b"\xff\xd8\xff" + os.urandom(30_000))
    assert one.status_code == 422 and "图片不能超过9KB" in one.get_data(as_text=True)
    # Over the whole form's cap (two images and the fields): refused before reading the body.
    big = upload(client, who, png(RED), b"\xff\xd8\xff" + os.urandom(120_000))
    assert big.status_code == 413 and "每张图片不能超过" in big.get_data(as_text=True)
    app.config["UPLOAD_MAX_BYTES"] = 8 * 1024 * 1024
    data = {"version": application(who).version, "photo": (io.BytesIO(png(RED)), "p.png")}
    no_token = client.post("/application/identity/upload", data=data, content_type="multipart/form-data")
    assert no_token.status_code == 400
    assert application(who).state == "identity_pending"


def test_no_id_card_manual_request_and_the_staff_rejection_reason(app: Flask, make_applicant) -> None:
    who = make_applicant()
    client = student(app, who)
    data = {
        "csrf_token": token(client),
        "version": application(who).version,
        "no_id_card": "true",
        "note": "身份证遗失",
        "photo": (io.BytesIO(png(RED)), "photo.png"),
    }
    response = client.post("/application/identity/manual", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    record = application(who)
    assert record.state == "manual_identity" and "id_card" not in record.data["identity"]
    page = client.get("/application").get_data(as_text=True)
    assert "已提交所在确认点人工审核" in page and "无身份证" in page and "身份证遗失" in page
    photo = client.get("/application/identity/image/photo")
    assert photo.status_code == 200 and photo.headers["X-Content-Type-Options"] == "nosniff"
    assert photo.headers["Content-Disposition"].startswith("attachment")
    assert client.get("/application/identity/image/id_card").status_code == 404
    assert client.get("/application/identity/image/passport").status_code == 404

    engine().fire(who.application_id, "reject_identity", STAFF, {"reason": "证件照与本人不符"})
    page = client.get("/application").get_data(as_text=True)
    assert "确认点人工认证未通过：证件照与本人不符" in page
    # Again, with the 证件照 already on file: no new file is needed.
    data = {"csrf_token": token(client), "version": application(who).version, "no_id_card": "true"}
    assert client.post("/application/identity/manual", data=data).status_code == 302
    engine().fire(who.application_id, "approve_identity", STAFF, {"note": "现场核验"})
    result = client.get("/application/identity/result").get_data(as_text=True)
    assert "认证成功" in result and "确认点已通过您的人工身份认证" in result


def test_the_upload_event_is_fired_only_by_its_own_route(app: Flask, make_applicant) -> None:
    # Images stored through 【申请人工认证】 skip the photo checks of 【上传认证】: firing
    # upload_identity with their ids through the generic routes must not reach the matcher.
    who = make_applicant()
    client = student(app, who)
    assert consent(client, who).status_code == 302
    photo = store_photo(who, "photo")
    card = store_photo(who, "id_card")
    before = application(who).version
    payload = {"photo": photo, "id_card": card}
    form = {"csrf_token": token(client), "version": before, **payload}
    assert client.post("/application/events/upload_identity", data=form).status_code == 409
    api = client.post(
        "/api/application/events/upload_identity",
        json={**payload, "version": before},
        headers={"X-CSRFToken": token(client)},
    )
    assert api.status_code == 409 and api.get_json()["error"] == "event_not_available"
    assert application(who).version == before and application(who).state == "identity_pending"


def store_photo(who: Applicant, kind: str) -> str:
    app_row = application(who)
    image = accept_image(png(RED), max_bytes=1 << 20, max_pixels=1 << 22)
    upload = store_image(
        db.session, storage(), application_id=app_row.id, application_uid=app_row.uid, kind=kind, image=image
    )
    db.session.commit()
    return upload.uid


def test_identity_routes_need_a_logged_in_student(app: Flask) -> None:
    client = app.test_client()
    for path in ("/application/status", "/application/identity/result", "/application/identity/image/photo"):
        assert client.get(path).status_code in {302, 401}


WEB_SCRIPT = r"""
import io, json, re, sys
from pathlib import Path
from gzsb.app import create_app
from gzsb.config import TestConfig
from gzsb.extensions import db
from gzsb.models import Application, ConfirmationPoint, Outbox
from gzsb.bootstrap import engine
from gzsb.store import publish
from gzsb.workflow.loader import load_flow_file
from gzsb.enrollment.catalog import import_catalog
from gzsb.cli.demo import CATALOG_CSV, demo_student
from tests.support import new_applicant, to_confirming
from tests.conftest import FLOW_FILE

tmp, faces = Path(sys.argv[1]), Path(sys.argv[2])
Cfg = type("Cfg", (TestConfig,), {
    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'web.sqlite3'}",
    "FACE_MATCHER": "deepface", "FACE_DISPATCH": "huey", "DEEPFACE_HOME": str(tmp / "home"),
})
app = create_app(Cfg)
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
with app.app_context():
    db.create_all()
    publish(db.session, load_flow_file(FLOW_FILE))
    db.session.add(ConfirmationPoint(code="NK01", name="南开区招生考试中心"))
    db.session.commit()
    import_catalog(db.session, CATALOG_CSV)
    who = new_applicant(1)
    to_confirming(engine(), who)
    engine().fire(who.application_id, "confirm_info", who.actor, {})
    client = app.test_client()
    tok = lambda path="/application": TOKEN.search(client.get(path).get_data(as_text=True)).group(1)
    number = demo_student(1).id_number
    login = {"login": number, "password": who.password, "csrf_token": tok("/login")}
    assert client.post("/login", data=login).status_code == 302
    def version():
        db.session.expire_all()
        return db.session.get(Application, who.application_id).version
    assert client.post("/application/events/give_face_consent",
                       data={"csrf_token": tok(), "version": version(), "agree": "true"}).status_code == 302
    bad = client.post("/application/identity/upload", content_type="multipart/form-data", data={
        "csrf_token": tok(), "version": version(),
        "photo": (io.BytesIO((faces / "obama.jpg").read_bytes()), "a.jpg"),
        "id_card": (io.BytesIO((faces / "two_people.jpg").read_bytes()), "b.jpg")})
    assert bad.status_code == 422 and "检测到多张人脸" in bad.get_data(as_text=True), bad.status_code
    good = client.post("/application/identity/upload", content_type="multipart/form-data", data={
        "csrf_token": tok(), "version": version(),
        "photo": (io.BytesIO((faces / "obama.jpg").read_bytes()), "a.jpg"),
        "id_card": (io.BytesIO((faces / "obama2.jpg").read_bytes()), "b.jpg")})
    assert good.status_code == 302, good.get_data(as_text=True)
    assert "比对中" in client.get("/application").get_data(as_text=True)
    state = client.get("/application/status").get_json()["state"]
    queued = [o.sent_at is not None for o in db.session.query(Outbox).filter_by(kind="job")]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in
               {"tensorflow", "tf_keras", "keras", "deepface", "torch", "onnxruntime", "cv2", "retinaface"})
print("RESULT " + json.dumps({"state": state, "queued": queued, "heavy": heavy, "dlib": "dlib" in sys.modules}))
"""


def test_the_web_process_never_imports_tensorflow(tmp_path: Path) -> None:
    """A fresh process serves consent, a refused and an accepted upload with the real face
    adapter (its HOG detector checks the images) and queues the job: no TensorFlow, no
    deepface, no other framework gets imported."""
    env = {**os.environ, "GZSB_INSTANCE": str(tmp_path / "instance"), "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", WEB_SCRIPT, str(tmp_path), str(ROOT / "tests" / "fixtures" / "faces")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["state"] == "face_checking" and result["queued"] == [True]
    assert result["dlib"] is True  # the upload check did run the detector
    assert result["heavy"] == []

"""Uploaded images: checked and re-encoded before storing, read back only by their application."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gzsb.bootstrap import storage
from gzsb.common.uploads import ImageProblem, accept_image, discard, image_response, read_upload, store_image
from gzsb.errors import NotFound
from gzsb.models import Upload

MB = 1024 * 1024


def picture(size=(60, 80), fmt="JPEG", exif_rotation: int | None = None) -> bytes:
    image = Image.new("RGB", size, (200, 120, 40))
    out = io.BytesIO()
    if exif_rotation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_rotation  # Orientation
        image.save(out, fmt, exif=exif)
    else:
        image.save(out, fmt)
    return out.getvalue()


def test_a_good_image_is_re_encoded_with_its_size() -> None:
    clean = accept_image(io.BytesIO(picture()), max_bytes=MB, max_pixels=10_000)
    assert (clean.kind, clean.width, clean.height, clean.mimetype) == ("jpeg", 60, 80, "image/jpeg")
    assert clean.data.startswith(b"\xff\xd8\xff")


def test_the_phone_rotation_is_applied_before_exif_is_dropped() -> None:
    # Orientation 6: stored landscape, shown portrait (how phones save portrait shots).
    clean = accept_image(io.BytesIO(picture((80, 60), exif_rotation=6)), max_bytes=MB, max_pixels=10_000)
    assert (clean.width, clean.height) == (60, 80)
    with Image.open(io.BytesIO(clean.data)) as again:
        assert 0x0112 not in again.getexif()


@pytest.mark.parametrize(
    ("data", "limit", "pixels", "chinese"),
    [
        (b"GIF89a" + b"\0" * 100, MB, 10_000, "仅支持JPG或PNG格式的图片"),
        (b"", MB, 10_000, "请选择要上传的图片"),
        (picture(), 100, 10_000, "图片不能超过100B"),
        (picture((200, 200)), MB, 10_000, "图片尺寸过大"),
        (b"\xff\xd8\xff" + b"garbage" * 20, MB, 10_000, "图片文件已损坏"),
    ],
)
def test_bad_files_are_refused_in_chinese(data, limit, pixels, chinese) -> None:
    with pytest.raises(ImageProblem) as caught:
        accept_image(io.BytesIO(data), max_bytes=limit, max_pixels=pixels)
    assert chinese in caught.value.chinese


def test_stored_images_are_read_back_only_by_their_application(app, make_applicant) -> None:
    from gzsb.extensions import db
    from gzsb.models import Application

    who, other = make_applicant(), make_applicant()
    owner = db.session.get(Application, who.application_id)
    clean = accept_image(picture(), max_bytes=MB, max_pixels=10_000)
    upload = store_image(
        db.session, storage(), application_id=owner.id, application_uid=owner.uid, kind="material", image=clean
    )
    db.session.commit()
    assert upload.storage_key.startswith(f"material/{owner.uid}/") and upload.storage_key.endswith(".jpg")
    row, data = read_upload(db.session, storage(), upload.uid, application_id=owner.id)
    assert row.id == upload.id and data == clean.data
    with pytest.raises(NotFound):
        read_upload(db.session, storage(), upload.uid, application_id=other.application_id)

    response = image_response(data, "material")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"] == 'attachment; filename="material.jpg"'

    assert discard(storage(), upload, owner.created_at) is True
    db.session.commit()
    assert not storage().exists(upload.storage_key)
    assert db.session.get(Upload, upload.id).deleted_at is not None
    with pytest.raises(NotFound, match="deleted"):
        read_upload(db.session, storage(), upload.uid)

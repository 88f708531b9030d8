"""Uploaded images of an application: check, re-encode, store, read back, delete.

Every image a student sends (identity photos, review materials) goes through
``accept_image`` before anything is stored: size cap before reading, JPEG/PNG by magic
bytes, pixel cap before decoding, re-encoded (EXIF dropped, rotation applied). A refused
file raises ``ImageProblem`` (English for logs, Chinese for the student) and changes
nothing. Stored files get random keys; the ``Upload`` row remembers what they are, whose
they are and when the retention job may delete them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from flask import Response
from sqlalchemy.orm import Session

from gzsb.adapters.storage import Storage, StorageError
from gzsb.common.images import EXTENSIONS, MIMETYPES, ImageProblem, clean_image, image_kind, read_capped
from gzsb.errors import NotFound
from gzsb.models import Upload

log = logging.getLogger(__name__)

__all__ = ["CleanImage", "ImageProblem", "accept_image", "discard", "image_response", "read_upload", "store_image"]


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    kind: str  # jpeg / png
    width: int
    height: int
    # What the face detector found on exactly these bytes (a Located as a dict), kept on the
    # upload's row so the face-match job reuses it instead of detecting again.
    face: dict[str, Any] | None = None

    @property
    def mimetype(self) -> str:
        return MIMETYPES[self.kind]


def accept_image(stream: BinaryIO | bytes, *, max_bytes: int, max_pixels: int) -> CleanImage:
    """The checked, re-encoded image, or ``ImageProblem``."""
    from PIL import Image

    raw = stream if isinstance(stream, bytes) else read_capped(stream, max_bytes)
    if len(raw) > max_bytes:
        read_capped(io.BytesIO(raw), max_bytes)  # raises with the same message as a stream would
    if not raw:
        raise ImageProblem("empty file", "请选择要上传的图片")
    data, kind = clean_image(raw, max_pixels=max_pixels)
    with Image.open(io.BytesIO(data)) as probe:
        width, height = probe.size
    return CleanImage(data, kind, width, height)


def store_image(
    session: Session,
    storage: Storage,
    *,
    application_id: int,
    application_uid: str,
    kind: str,
    image: CleanImage,
    delete_after: datetime | None = None,
) -> Upload:
    """Write the file and add its row (the caller commits, usually with the transition)."""
    key = f"{kind.replace('_', '-')}/{application_uid}/{secrets.token_hex(16)}.{EXTENSIONS[image.kind]}"
    storage.put(key, image.data)
    upload = Upload(
        application_id=application_id,
        kind=kind,
        storage_key=key,
        sha256=hashlib.sha256(image.data).hexdigest(),
        mimetype=image.mimetype,
        size=len(image.data),
        width=image.width,
        height=image.height,
        face=image.face,
        delete_after=delete_after,
    )
    session.add(upload)
    session.flush()
    return upload


def read_upload(
    session: Session, storage: Storage, uid: str, *, application_id: int | None = None
) -> tuple[Upload, bytes]:
    """An upload's row and bytes; ``application_id`` restricts it to one application."""
    upload = session.query(Upload).filter_by(uid=uid).one_or_none()
    if upload is None or (application_id is not None and upload.application_id != application_id):
        raise NotFound(f"no upload {uid!r} for this application")
    if upload.deleted_at is not None:
        raise NotFound(f"upload {uid!r} was deleted at {upload.deleted_at.isoformat()}")
    try:
        return upload, storage.get(upload.storage_key)
    except StorageError:
        raise NotFound(f"upload {uid!r} is missing from storage") from None


def discard(storage: Storage, upload: Upload, now: datetime) -> bool:
    """Delete the file and mark the row; the row stays as the record that it existed."""
    removed = storage.delete(upload.storage_key)
    upload.deleted_at = now
    return removed


def image_response(data: bytes, filename: str) -> Response:
    """Stored images go out as attachments, never sniffed, never kept by shared caches."""
    kind = image_kind(data[:8])
    if kind is None:  # stored data is checked on the way in; refuse to serve anything else
        raise NotFound("stored image has an unknown type")
    response = Response(data, mimetype=MIMETYPES[kind])
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.{EXTENSIONS[kind]}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response

"""上传审核 (§2.11), the student's side: add and remove material photos before 【提交审核】.

Each photo is checked and stored as an ``Upload`` (kind ``material``) the moment it is
added, so the page can show it as a thumbnail; 【提交审核】 then fires ``submit_materials``
with the uids, and the step checks them again (they come from the browser). Adding and
removing are allowed only while the application waits for materials.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from gzsb.adapters.storage import Storage
from gzsb.common.uploads import ImageProblem, accept_image, discard, store_image
from gzsb.errors import ConflictError, NotFound
from gzsb.materials.names import MATERIALS_PENDING, MATERIALS_REJECTED
from gzsb.models import Application, Upload
from gzsb.staff.steps import MATERIAL_KIND, MAX_MATERIALS

log = logging.getLogger(__name__)

# States in which the student may change the set of photos (the upload page).
EDITABLE = frozenset({MATERIALS_PENDING, MATERIALS_REJECTED})
NOT_NOW = "当前不能修改审核材料，请刷新页面"


def live_materials(session: Session, application_id: int) -> list[Upload]:
    """The application's material photos that are not deleted, oldest first."""
    return list(
        session.scalars(
            select(Upload)
            .where(Upload.application_id == application_id, Upload.kind == MATERIAL_KIND, Upload.deleted_at.is_(None))
            .order_by(Upload.created_at, Upload.id)
        )
    )


def _editable(app: Application) -> None:
    if app.state not in EDITABLE:
        raise ConflictError(f"application {app.uid} is in {app.state}: materials cannot change", public=NOT_NOW)


def add_material(
    session: Session, storage: Storage, app: Application, stream: BinaryIO | bytes, *, max_bytes: int, max_pixels: int
) -> Upload:
    """Check and store one photo (``ImageProblem`` when refused; nothing is stored then)."""
    _editable(app)
    if len(live_materials(session, app.id)) >= MAX_MATERIALS:
        raise ImageProblem("too many materials", f"最多上传{MAX_MATERIALS}张材料照片，请先删除不需要的照片")
    image = accept_image(stream, max_bytes=max_bytes, max_pixels=max_pixels)
    upload = store_image(
        session, storage, application_id=app.id, application_uid=app.uid, kind=MATERIAL_KIND, image=image
    )
    log.info("application %s: material %s added (%dx%d)", app.uid, upload.uid, image.width, image.height)
    return upload


def remove_material(session: Session, storage: Storage, app: Application, uid: str, now: datetime) -> None:
    """Delete one of the application's own live material photos (404 for anything else)."""
    upload = session.scalars(
        select(Upload).where(
            Upload.uid == uid,
            Upload.application_id == app.id,
            Upload.kind == MATERIAL_KIND,
            Upload.deleted_at.is_(None),
        )
    ).first()
    if upload is None:
        raise NotFound(f"no live material {uid!r} in application {app.uid}")
    _editable(app)
    discard(storage, upload, now)
    log.info("application %s: material %s removed", app.uid, uid)


def page_facts(session: Session, app: Application) -> dict[str, Any]:
    """What the materials pages show: the live photos, what was sent, the last review."""
    section = (app.data or {}).get("materials") or {}
    return {
        "live": live_materials(session, app.id),
        "sent": list(section.get("files") or []),
        "review": section.get("review") or None,
        "submitted_at": section.get("submitted_at"),
        "round": section.get("round", 0),
        "max": MAX_MATERIALS,
    }

"""上传审核 (§2.11), the student's side: add and remove material photos before 【提交审核】.

The flow's ``materials`` section names the documents of the student's 考生类别; each is one
slot (name, hint, accepted types) holding one photo. Each photo is checked and stored as an
``Upload`` (kind ``material``, ``slot`` its document) the moment it is added, so the page
can show it as a thumbnail; 【提交审核】 then fires ``submit_materials`` with the uids, and the
step checks them again (they come from the browser), also that every required document is
there. Adding and removing are allowed only while the application waits for materials.
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
from gzsb.staff.steps import MATERIAL_KIND, MAX_MATERIALS, required_documents
from gzsb.workflow.spec import DocumentSpec, FlowSpec

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


TYPE_NAMES = {"jpeg": "JPG", "png": "PNG"}


def documents_of(flow: FlowSpec, app: Application) -> tuple[DocumentSpec, ...]:
    return required_documents(flow, app.data or {})


def type_names(document: DocumentSpec) -> str:
    return "或".join(TYPE_NAMES.get(t, t.upper()) for t in document.types)


def _document(flow: FlowSpec | None, app: Application, slot: str) -> DocumentSpec | None:
    """The document behind ``slot`` (None for an unnamed photo, allowed only when the flow
    names no documents for this student)."""
    documents = documents_of(flow, app) if flow is not None else ()
    if not slot:
        if documents:
            raise ImageProblem("material without a slot", "请在对应的材料项下点击【+】上传")
        return None
    found = next((d for d in documents if d.key == slot), None)
    if found is None:
        raise NotFound(f"application {app.uid} has no material slot {slot!r}")
    return found


def add_material(
    session: Session,
    storage: Storage,
    app: Application,
    stream: BinaryIO | bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    slot: str = "",
    flow: FlowSpec | None = None,
) -> Upload:
    """Check and store one photo into one document slot (``ImageProblem`` when refused;
    nothing is stored then)."""
    _editable(app)
    document = _document(flow, app, slot)
    live = live_materials(session, app.id)
    if len(live) >= MAX_MATERIALS:
        raise ImageProblem("too many materials", f"最多上传{MAX_MATERIALS}张材料照片，请先删除不需要的照片")
    if document is not None and any(u.slot == slot for u in live):
        raise ImageProblem("slot taken", f"“{document.label}”已上传，如需更换请先删除原照片")
    image = accept_image(stream, max_bytes=max_bytes, max_pixels=max_pixels)
    if document is not None and image.kind not in document.types:
        raise ImageProblem("type not accepted", f"“{document.label}”请上传{type_names(document)}格式的照片")
    upload = store_image(
        session, storage, application_id=app.id, application_uid=app.uid, kind=MATERIAL_KIND, image=image
    )
    upload.slot = slot
    log.info("application %s: material %s added to %r (%dx%d)", app.uid, upload.uid, slot, image.width, image.height)
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


def slots_of(documents: tuple[DocumentSpec, ...], uploads: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per document with its upload (or None), then photos in no named slot."""
    rows: list[dict[str, Any]] = [
        {"document": d, "upload": uploads.get(d.key), "types": type_names(d)} for d in documents
    ]
    named = {d.key for d in documents}
    rows += [{"document": None, "upload": u, "types": ""} for k, u in uploads.items() if k not in named]
    return rows


def page_facts(session: Session, app: Application, flow: FlowSpec | None = None) -> dict[str, Any]:
    """What the materials pages show: the named slots with their photos, what was sent, the
    last review."""
    section = (app.data or {}).get("materials") or {}
    live = live_materials(session, app.id)
    documents = documents_of(flow, app) if flow is not None else ()
    by_slot: dict[str, Any] = {(u.slot or f"-{u.uid}"): u for u in live}
    sent_slots = dict(section.get("slots") or {})
    labels = {d.key: d.label for d in documents}
    return {
        "documents": documents,
        "slots": slots_of(documents, by_slot),
        "missing": [d.label for d in documents if not d.optional and d.key not in by_slot],
        "sent_named": [(uid, labels.get(sent_slots.get(uid, ""), "")) for uid in section.get("files") or []],
        "live": live,
        "sent": list(section.get("files") or []),
        "review": section.get("review") or None,
        "submitted_at": section.get("submitted_at"),
        "round": section.get("round", 0),
        "max": MAX_MATERIALS,
    }

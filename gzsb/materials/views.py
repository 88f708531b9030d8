"""上传审核 pages' routes: add a photo (【+】), see it, delete it. 【提交审核】 is the ordinary
event POST (``enrollment.fire``) with the uids; the ``materials`` step checks them.

A student reaches only the material photos of their own application: any other uid is a
404, whether it exists or not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, redirect, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from gzsb.accounts.session import login_required
from gzsb.bootstrap import storage
from gzsb.common.beijing import beijing_text
from gzsb.common.templates import template_globals
from gzsb.common.uploads import ImageProblem, image_response, read_upload
from gzsb.enrollment.views import flow_of, own_application, render_state
from gzsb.errors import ConflictError, NotFound
from gzsb.extensions import csrf, db
from gzsb.materials.service import add_material, page_facts, remove_material
from gzsb.models import Application
from gzsb.staff.steps import MATERIAL_KIND

bp = Blueprint("materials", __name__)

# Room for the multipart framing and the CSRF token around the one file.
FORM_SLACK = 64 * 1024


template_globals(bp, materials_facts=lambda app, flow=None: page_facts(db.session, app, flow))


@bp.app_template_filter("bj_time")
def bj_time(value: Any) -> str:
    """A stored moment (datetime or ISO text) in Beijing time, to the minute."""
    if not value:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return beijing_text(moment)


def _page(app: Application, message: str, status: int) -> Any:
    return render_state(app, errors={"files": [message]}, status=status)


def _too_large() -> str:
    return f"图片不能超过{current_app.config['UPLOAD_MAX_BYTES'] // (1024 * 1024)}MB，请压缩后重新上传"


@bp.post("/application/materials")
@login_required("student")
def upload() -> Any:
    """【+】: one photo, checked and stored at once. The body's size is capped before anything
    reads it, so CSRF is checked here, after the cap (not by the app-wide hook)."""
    app = own_application()
    limit = current_app.config["UPLOAD_MAX_BYTES"] + FORM_SLACK
    if request.content_length is not None and request.content_length > limit:
        return _page(app, _too_large(), 413)
    request.max_content_length = limit
    try:
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
        file = request.files.get("file")
    except RequestEntityTooLarge:
        return _page(app, _too_large(), 413)
    if file is None or not file.filename:
        return _page(app, "请选择要上传的材料照片（JPG或PNG）", 422)
    try:
        add_material(
            db.session,
            storage(),
            app,
            file.stream,
            max_bytes=current_app.config["UPLOAD_MAX_BYTES"],
            max_pixels=current_app.config["UPLOAD_MAX_PIXELS"],
            slot=request.form.get("slot", "")[:40],
            flow=flow_of(app),
        )
    except ImageProblem as exc:
        db.session.rollback()
        return _page(db.session.get(Application, app.id), f"{file.filename[:40]}：{exc.chinese}", 422)
    except ConflictError as exc:
        db.session.rollback()
        return _page(db.session.get(Application, app.id), exc.public_message, 409)
    db.session.commit()
    return redirect(url_for("enrollment.application") + "#materials")


csrf.exempt("gzsb.materials.views.upload")


@bp.get("/application/materials/<uid>")
@login_required("student")
def image(uid: str) -> Any:
    app = own_application()
    upload, data = read_upload(db.session, storage(), uid[:40], application_id=app.id)
    if upload.kind != MATERIAL_KIND:
        raise NotFound(f"upload {uid} of application {app.uid} is not a material photo")
    return image_response(data, "material")


@bp.post("/application/materials/<uid>/delete")
@login_required("student")
def delete(uid: str) -> Any:
    app = own_application()
    try:
        remove_material(db.session, storage(), app, uid[:40], current_app.extensions["gzsb.clock"]())
    except ConflictError as exc:
        db.session.rollback()
        return _page(db.session.get(Application, app.id), exc.public_message, 409)
    db.session.commit()
    return redirect(url_for("enrollment.application") + "#materials")

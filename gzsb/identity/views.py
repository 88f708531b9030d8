"""身份认证 pages: the two uploads, the manual request, the 比对中 status, the result.

Consent (【同意并继续】) goes through the generic event route; the uploads need their own
routes because they carry files. Each caps the body before anything reads it (so CSRF is
checked here, after the cap), then hands the files to ``gzsb.identity.service``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from gzsb.accounts.session import login_required
from gzsb.adapters.faces import face_matcher, thresholds_for
from gzsb.bootstrap import engine, storage
from gzsb.common.templates import template_globals
from gzsb.common.uploads import image_response, read_upload
from gzsb.enrollment.views import current_actor, flow_of, own_application, render_state, with_application_only
from gzsb.errors import GuardRefused, InvalidInput, NotFound
from gzsb.extensions import csrf, db
from gzsb.identity.names import FACE_CHECKING, IDENTITY_PENDING, MANUAL_IDENTITY
from gzsb.identity.service import ID_CARD, PHOTO, UploadLimits, identity_view, request_manual, submit_for_matching
from gzsb.models import Application
from gzsb.worker.drain import dispatch_jobs

log = logging.getLogger(__name__)
bp = Blueprint("identity", __name__)

FORM_SLACK = 64 * 1024  # the text fields beside the two images


@bp.record_once
def _check_face_settings(state: Any) -> None:
    """At start-up: the face model has thresholds and auto-pass < review (else a clear
    ConfigurationError before anything is served)."""
    model = state.app.config["FACE_MODEL"]
    limits = thresholds_for(state.app.config["FACE_THRESHOLDS"], model)
    log.info("faces: model %s, auto-pass ≤ %.3f, review ≤ %.3f", model, limits.auto_pass, limits.review)


template_globals(bp, identity_view=lambda app, flow: identity_view(app, flow.settings))


def _limit() -> int:
    return 2 * int(current_app.config["UPLOAD_MAX_BYTES"]) + FORM_SLACK


def _too_large(app: Application) -> Response:
    mb = int(current_app.config["UPLOAD_MAX_BYTES"]) // (1024 * 1024)
    return make_response(render_state(app, errors={"_upload": [f"每张图片不能超过{mb}MB，请压缩后重试"]}, status=413))


def _read_form(app: Application) -> tuple[Any, dict[str, Any]] | Response:
    """(form, files) once the size cap and CSRF passed; else the page to answer with."""
    if request.content_length is not None and request.content_length > _limit():
        return _too_large(app)
    request.max_content_length = _limit()
    try:
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
        form = request.form
        files = {kind: request.files.get(kind) for kind in (PHOTO, ID_CARD)}
    except RequestEntityTooLarge:
        return _too_large(app)
    return form, {kind: f.stream for kind, f in files.items() if f is not None and f.filename}


def _refused(app: Application, exc: InvalidInput | GuardRefused) -> Any:
    errors = exc.form_errors
    return render_state(db.session.get(Application, app.id), errors=errors, values=dict(request.form), status=422)


def _dispatch(app: Application) -> None:
    """Queue the face job right after the transition committed (the tick is the safety net)."""
    if current_app.config["FACE_DISPATCH"] != "huey":
        return
    from gzsb.worker.tasks import enqueue_job

    dispatch_jobs(db.session, enqueue_job, current_app.extensions["gzsb.clock"](), application_id=app.id)


def _with_upload_form(action: Callable[[Application, Any, dict[str, Any]], object]) -> Any:
    """Cap, CSRF, the files; then ``action``; refusals re-render the page with the reasons."""
    app = own_application()
    read = _read_form(app)
    if isinstance(read, Response):
        return read
    form, files = read
    try:
        action(app, form, files)
    except (InvalidInput, GuardRefused) as exc:
        return _refused(app, exc)
    return redirect(url_for("enrollment.application"))


@bp.post("/application/identity/upload")
@login_required("student")
def upload() -> Any:
    def submit(app: Application, form: Any, files: dict[str, Any]) -> None:
        submit_for_matching(
            db.session, storage(), engine(), app, current_actor(), files,
            version=form.get("version", type=int),
            limits=UploadLimits.from_config(current_app.config),
            matcher=face_matcher(current_app.config),
        )  # fmt: skip
        _dispatch(app)

    return _with_upload_form(submit)


@bp.post("/application/identity/manual")
@login_required("student")
def manual() -> Any:
    def submit(app: Application, form: Any, files: dict[str, Any]) -> None:
        request_manual(
            db.session, storage(), engine(), app, current_actor(), files,
            no_id_card=form.get("no_id_card") in {"true", "on", "1"},
            note=(form.get("note") or "").strip(),
            version=form.get("version", type=int),
            limits=UploadLimits.from_config(current_app.config),
        )  # fmt: skip

    return _with_upload_form(submit)


@bp.get("/application/status")
@login_required("student")
@with_application_only
def status() -> Any:
    """What the 比对中 page polls: small, never cached."""
    app = own_application()
    response = jsonify({"state": app.state, "version": app.version, "label": flow_of(app).states[app.state].label})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/application/identity/result")
@login_required("student")
def result() -> Any:
    """Where 比对中 goes when it ends: 认证成功 once verified, else the current page."""
    app = own_application()
    flow = flow_of(app)
    view = identity_view(app, flow.settings)
    if app.state in {IDENTITY_PENDING, FACE_CHECKING, MANUAL_IDENTITY} or not view["verified"]:
        return redirect(url_for("enrollment.application"))
    return render_template("identity_result.html", app=app, flow=flow, view=view)


@bp.get("/application/identity/image/<kind>")
@login_required("student")
def image(kind: str) -> Any:
    """The student's own current 证件照 / ID card image (thumbnails on the identity pages)."""
    if kind not in (PHOTO, ID_CARD):
        raise NotFound(f"no identity image kind {kind!r}")
    app = own_application()
    uid = ((app.data or {}).get("identity") or {}).get(kind)
    if not uid:
        raise NotFound(f"application {app.uid} has no {kind} image")
    _, data = read_upload(db.session, storage(), uid, application_id=app.id)
    return image_response(data, kind.replace("_", "-"))


csrf.exempt("gzsb.identity.views.upload")
csrf.exempt("gzsb.identity.views.manual")

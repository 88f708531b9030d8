"""The catalogue pop-up, the 学籍/学历 photo (图像校对) and the 信息有误 report with its evidence.

Every route here serves the logged-in student's own things only: the registry photo of
their own ID number, the evidence of their own application. Anything else is a 404 (so
nobody learns whether another student's record exists). Images go out with ``nosniff``,
as attachments, never cached by shared caches.

The templates of the journey pages get their lists (confirmation points, the catalogue,
the student's own ID number and mobile for the prefilled form) from the helpers this
blueprint puts in every template's context.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from flask import Blueprint, current_app, g, jsonify, redirect, request, url_for
from markupsafe import Markup, escape
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from gzsb.accounts.idcard import parse_id_number
from gzsb.accounts.session import current_account, login_required
from gzsb.adapters.storage import StorageError
from gzsb.bootstrap import engine, storage, vault
from gzsb.common.images import EXTENSIONS, ImageProblem, clean_image, read_capped
from gzsb.common.security import mask_id_number, mask_mobile
from gzsb.common.templates import template_globals
from gzsb.common.uploads import image_response
from gzsb.enrollment import steps
from gzsb.enrollment.catalog import catalogue, search_catalog
from gzsb.enrollment.names import REPORT_XUEJI_ERROR
from gzsb.enrollment.service import latest_correction
from gzsb.enrollment.views import current_actor, form_payload, own_application, render_state
from gzsb.errors import GuardRefused, InvalidInput, NotFound
from gzsb.extensions import csrf, db
from gzsb.models import Application, ConfirmationPoint, RegistryRecord

log = logging.getLogger(__name__)
bp = Blueprint("catalog", __name__)

EVIDENCE_MAX_BYTES = 5 * 1024 * 1024
# The whole 信息有误 form: the images plus room for the text fields.
REPORT_MAX_BYTES = steps.MAX_EVIDENCE * EVIDENCE_MAX_BYTES + 256 * 1024
SEARCH_LIMIT = 60
_EVIDENCE_NAME = re.compile(steps.EVIDENCE_NAME)
_UID = re.compile(r"^[0-9a-f]{32}$")


# ------------------------------------------------------------------------------ storage


def evidence_key(application_uid: str, name: str) -> str:
    """The storage key of an evidence image (the CorrectionRequest holds these keys)."""
    if not _UID.match(application_uid) or not _EVIDENCE_NAME.match(name):
        raise NotFound("no such evidence")
    return f"evidence/{application_uid}/{name}"


# ------------------------------------------------------------------- template helpers


def _own_identity() -> dict[str, str]:
    """The logged-in account's name, ID number, mobile, birth date and sex (for prefilling)."""
    if "journey_identity" not in g:
        account = current_account()
        identity: dict[str, str] = {}
        if account is not None:
            v = vault()
            number = v.decrypt(account.id_number_enc)
            identity = {"name": account.name, "id_number": number, "mobile": ""}
            if account.mobile_enc:
                identity["mobile"] = v.decrypt(account.mobile_enc)
            try:
                parsed = parse_id_number(number)
                identity.update(birth_date=parsed.birth_date.isoformat(), sex=parsed.sex)
            except ValueError:
                pass
        g.journey_identity = identity
    return g.journey_identity


def _own_registry() -> dict[str, Any]:
    """The logged-in student's own 学籍/学历 record (school, major, year) for prefilling 基本信息."""
    if "journey_registry" not in g:
        number = _own_identity().get("id_number", "")
        record = None
        if number:
            record = db.session.scalars(
                select(RegistryRecord).where(RegistryRecord.id_number_index == vault().index(number))
            ).first()
        g.journey_registry = (
            {}
            if record is None
            else {"school": record.school, "major": record.major, "graduation_year": record.graduation_year}
        )
    return g.journey_registry


def _confirmation_points() -> list[dict[str, str]]:
    rows = db.session.scalars(select(ConfirmationPoint).order_by(ConfirmationPoint.code))
    return [{"code": p.code, "name": p.name, "address": p.address} for p in rows]


def _catalogue() -> list[dict[str, Any]]:
    if "journey_catalogue" not in g:
        g.journey_catalogue = catalogue(db.session)
    return g.journey_catalogue


def _catalogue_options() -> tuple[str, str]:
    """The 志愿 selects' options, escaped once per request: every 志愿 row lists the whole
    catalogue (hundreds of options a row), and rendering them in Jinja row by row was most
    of the page's time. Rows differ only in the one option marked ``selected``."""
    if "journey_catalogue_options" not in g:
        cat = _catalogue()
        institutions = "".join(
            f'<option value="{escape(i["code"])}">{escape(i["name"])}（{escape(i["code"])}）</option>' for i in cat
        )
        majors = "".join(
            f'<optgroup label="{escape(i["name"])}" data-institution="{escape(i["code"])}">'
            + "".join(
                f'<option value="{escape(m["code"])}" data-institution="{escape(i["code"])}">'
                f"{escape(m['name'])}（{escape(m['code'])}）</option>"
                for m in i["majors"]
            )
            + "</optgroup>"
            for i in cat
        )
        g.journey_catalogue_options = (institutions, majors)
    return g.journey_catalogue_options


def institution_options(selected: str) -> Markup:
    """Every institution as an option, ``selected`` marked."""
    html = _catalogue_options()[0]
    if selected:
        mark = f'<option value="{escape(selected)}">'
        html = html.replace(mark, mark[:-1] + " selected>", 1)
    return Markup(html)


def major_options(institution: str, major: str) -> Markup:
    """Every major, grouped by institution, with the one typed marked: under its institution,
    else (a mismatch the server reports) its first match anywhere in the catalogue."""
    html = _catalogue_options()[1]
    if not major:
        return Markup(html)
    holders = [i["code"] for i in _catalogue() if any(m["code"] == major for m in i["majors"])]
    owner = institution if institution in holders else (holders[0] if holders else None)
    if owner is None:
        return Markup(html)
    mark = f'<option value="{escape(major)}" data-institution="{escape(owner)}">'
    return Markup(html.replace(mark, mark[:-1] + " selected>", 1))


template_globals(
    bp,
    journey_identity=_own_identity,
    journey_points=_confirmation_points,
    journey_registry=_own_registry,
    registry_mismatch=steps.registry_mismatch,
    journey_catalogue=_catalogue,
    institution_options=institution_options,
    major_options=major_options,
    journey_options={
        "sexes": steps.SEXES,
        "political": steps.POLITICAL,
        "categories": steps.CATEGORIES,
        "ethnic_groups": steps.ETHNIC_GROUPS,
        "max_evidence": steps.MAX_EVIDENCE,
        "evidence_mb": EVIDENCE_MAX_BYTES // (1024 * 1024),
    },
    preference_label=steps.preference_label,
)


@bp.app_template_filter("mask_id")
def _mask_id(value: Any) -> str:
    return mask_id_number(str(value or ""))


@bp.app_template_filter("mask_mobile")
def _mask_mobile(value: Any) -> str:
    return mask_mobile(str(value or ""))


# ------------------------------------------------------------------------------ routes


@bp.get("/catalog/search")
@login_required()
def search() -> Any:
    """The pop-up's search: (institution, major) pairs matching every word of ``q``."""
    query = request.args.get("q", "", type=str)[:100]
    institution = request.args.get("institution", "", type=str)[:20]
    results = search_catalog(db.session, query, institution=institution, limit=SEARCH_LIMIT + 1)
    return jsonify({"results": results[:SEARCH_LIMIT], "truncated": len(results) > SEARCH_LIMIT})


@bp.get("/application/xueji/photo/<int:record_id>")
@login_required("student")
def registry_photo(record_id: int) -> Any:
    """The registry photo of the student's own record (图像校对); anyone else's is a 404."""
    account = current_account()
    assert account is not None
    record = db.session.get(RegistryRecord, record_id)
    if record is None or record.id_number_index != account.id_number_index or not record.photo:
        raise NotFound(f"registry photo {record_id} is not the account's own")
    return image_response(record.photo, "xueji-photo")


@bp.get("/application/xueji/evidence/<name>")
@login_required("student")
def evidence(name: str) -> Any:
    """An evidence image of the student's own 信息有误 report."""
    app = own_application()
    if name not in latest_correction(db.session, app.id).get("evidence", []):
        raise NotFound(f"evidence {name!r} is not in application {app.uid}'s report")
    try:
        data = storage().get(evidence_key(app.uid, name))
    except StorageError:
        raise NotFound(f"evidence {name!r} of application {app.uid} is missing from storage") from None
    return image_response(data, "evidence")


def _too_large(app: Application) -> Any:
    limit = REPORT_MAX_BYTES // (1024 * 1024)
    message = f"上传的图片总大小不能超过{limit}MB（每张不超过{EVIDENCE_MAX_BYTES // (1024 * 1024)}MB），请压缩后重试"
    return render_state(app, errors={"evidence": [message]}, status=413)


@bp.post("/application/xueji/report")
@login_required("student")
def report_xueji() -> Any:
    """信息有误: check and store the evidence images, then fire report_xueji_error.

    The body's size is capped before anything reads it (so CSRF is checked here, after the
    cap, rather than by the app-wide hook that would read the whole body first).
    """
    app = own_application()
    if request.content_length is not None and request.content_length > REPORT_MAX_BYTES:
        return _too_large(app)
    request.max_content_length = REPORT_MAX_BYTES
    try:
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
        form = request.form
        uploads = [f for f in request.files.getlist("evidence") if f and f.filename]
    except RequestEntityTooLarge:
        return _too_large(app)

    payload = form_payload(form)
    version = form.get("version", type=int)
    errors: dict[str, list[str]] = {}
    problem_errors = steps.XuejiReportSchema().validate(
        {"problem": payload.get("problem", ""), "evidence": ["0" * 32 + ".jpg"]}
    )
    if "problem" in problem_errors:
        errors["problem"] = problem_errors["problem"]
    images: list[tuple[bytes, str]] = []
    if not uploads:
        errors["evidence"] = ["请上传证明材料图片（JPG或PNG）"]
    elif len(uploads) > steps.MAX_EVIDENCE:
        errors["evidence"] = [f"最多上传{steps.MAX_EVIDENCE}张证明材料图片"]
    else:
        for upload in uploads:
            try:
                images.append(clean_image(read_capped(upload.stream, EVIDENCE_MAX_BYTES)))
            except ImageProblem as exc:
                errors.setdefault("evidence", []).append(f"{(upload.filename or '')[:40]}：{exc.chinese}")
    if errors:
        return render_state(app, errors=errors, values=payload, status=422)

    stored: list[str] = []
    try:
        for data, kind in images:
            name = f"{secrets.token_hex(16)}.{EXTENSIONS[kind]}"
            storage().put(evidence_key(app.uid, name), data)
            stored.append(name)
        event_payload: dict[str, Any] = {"problem": payload.get("problem", ""), "evidence": stored}
        if "choices" in payload:
            event_payload["choices"] = payload["choices"]
        engine().fire(app.id, REPORT_XUEJI_ERROR, current_actor(), event_payload, expected_version=version)
    except (InvalidInput, GuardRefused) as exc:
        _remove(app.uid, stored)
        fresh = db.session.get(Application, app.id)
        found = exc.form_errors
        return render_state(fresh, errors=found, values=payload, status=422)
    except BaseException:
        _remove(app.uid, stored)
        raise
    log.info("application %s: 学籍/学历 correction reported with %d image(s)", app.uid, len(stored))
    return redirect(url_for("enrollment.application") + "#xueji")


def _remove(application_uid: str, names: list[str]) -> None:
    for name in names:
        storage().delete(evidence_key(application_uid, name))


csrf.exempt("gzsb.enrollment.catalog_views.report_xueji")

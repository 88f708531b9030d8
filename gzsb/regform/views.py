"""下载报名表 (2.12) and the public verify page of a printed form.

The download page itself is the ``approved`` state's page (pages/download.html); it reads
the form's status through the ``registration_form`` template helper, which also asks the
worker for the PDF when there is none for the current content. The PDF goes only to its
owner, or to staff of the applicant's 确认点.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from gzsb.accounts.session import current_account, login_required
from gzsb.common.beijing import beijing_text
from gzsb.enrollment.views import own_application
from gzsb.errors import NotFound
from gzsb.extensions import db
from gzsb.models import Application
from gzsb.regform import content
from gzsb.regform import service as forms
from gzsb.worker.tasks import enqueue_form_render

bp = Blueprint("forms", __name__)
SERIAL = re.compile(r"^\d{4}-[A-Z0-9]{1,16}-\d{6}$")


def _now() -> Any:
    return current_app.extensions["gzsb.clock"]()


@bp.app_template_filter("form_time")
def form_time(moment: datetime | None) -> str:
    return beijing_text(moment) if moment else ""


@bp.app_template_global("registration_form")
def registration_form(app: Application) -> forms.FormStatus | None:
    return forms.form_status(db.session, app, _now(), enqueue_form_render)


def pdf_response(pdf: bytes, serial: str) -> Response:
    response = Response(pdf, mimetype="application/pdf")
    name = f"报名表-{serial}.pdf"
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"registration-form-{serial}.pdf\"; filename*=UTF-8''{quote(name)}"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/application/form.pdf")
@login_required("student")
def download() -> Any:
    found = forms.fresh_pdf(db.session, own_application())
    if found is None:
        # Not approved, or not rendered for the current content yet: the page says which.
        return redirect(url_for("enrollment.application"))
    form, pdf = found
    forms.mark_downloaded(db.session, form, _now())
    return pdf_response(pdf, form.serial)


@bp.get("/staff/applications/<uid>/form.pdf")
@login_required("staff")
def staff_download(uid: str) -> Any:
    account = current_account()
    assert account is not None
    app = db.session.scalars(select(Application).where(Application.uid == uid[:32])).first()
    # Another point's applicant looks exactly like a missing one.
    if (
        app is None
        or account.confirmation_point_id is None
        or app.confirmation_point_id != account.confirmation_point_id
    ):
        raise NotFound(f"no application {uid!r} at this staff member's confirmation point")
    found = forms.fresh_pdf(db.session, app)
    if found is None:
        forms.form_status(db.session, app, _now(), enqueue_form_render)  # ask for it; try again shortly
        found = forms.fresh_pdf(db.session, app)
    if found is None:
        raise NotFound(f"application {uid!r} has no current registration form", public="报名表生成中，请稍后再试")
    form, pdf = found
    return pdf_response(pdf, form.serial)


@bp.get("/verify")
def verify_form() -> Any:
    """Typed in by hand: the serial and code printed under the QR code."""
    serial = request.args.get("serial", "", type=str).strip().upper()[:40]
    code = request.args.get("code", "", type=str)[:40]
    if serial:
        return redirect(url_for("forms.verify", serial=serial, code=content.normalize_code(code)))
    return _verify_page("", "", None)


@bp.get("/verify/<serial>")
def verify(serial: str) -> Any:
    code = request.args.get("code", "", type=str)[:40]
    verdict = None
    if code or not SERIAL.match(serial):
        verdict = content.Verdict(content.INVALID)
        if SERIAL.match(serial):
            verdict = content.verify(db.session, serial, code, current_app.config["FORM_KEY"])
    return _verify_page(serial, code, verdict)


def _verify_page(serial: str, code: str, verdict: content.Verdict | None) -> Any:
    response = Response(render_template("verify.html", serial=serial[:40], code=code, verdict=verdict))
    # The code is in the address: keep it out of caches, referrers and search engines.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response

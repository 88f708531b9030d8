"""The 报名表 PDF (2.12): rendering, and the cache that knows when a PDF is stale.

The PDF is cached in ``RegistrationForm``; when the content digest (``gzsb.regform.content``)
changes it is stale and rendered again by the worker (``gzsb.worker.tasks``).
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from gzsb.adapters.pdf import PdfError, PdfRenderer
from gzsb.adapters.storage import Storage, StorageError
from gzsb.common.beijing import as_utc, beijing_text
from gzsb.common.images import image_kind
from gzsb.common.security import mask_mobile
from gzsb.enrollment.steps import preference_label
from gzsb.models import (
    Application,
    RegistrationForm,
)
from gzsb.regform.content import (
    FINAL_STATE,
    content_digest,
    ensure_form,
    form_content,
    form_of,
    format_code,
    photo_row,
    verification_code,
    verify_url,
)

log = logging.getLogger(__name__)

# Bump when the template changes: cached PDFs are rendered again, verification codes (over
# the content only) stay valid.
LAYOUT = 1
TEMPLATE = "forms/registration_form.html"
PHOTO_BOX = (354, 472)  # pixels: 30 × 40 mm at 300 dpi
PHOTO_MAX_PIXELS = 40_000_000
CHANNELS = {"alipay": "支付宝", "wechat": "微信支付", "unionpay": "银联", "sandbox": "模拟支付"}


# ------------------------------------------------------------------------------ status


@dataclass(frozen=True)
class FormStatus:
    ready: bool
    serial: str
    rendered_at: datetime | None = None
    failed: bool = False
    code: str = ""


Enqueue = Callable[[int], None]


def is_fresh(form: RegistrationForm, digest: str) -> bool:
    # ``digest`` is written together with the PDF (never on a failed render).
    return bool(form.digest) and form.digest == digest and form.layout == LAYOUT and form.rendered_at is not None


def form_status(session: Session, app: Application, now: datetime, enqueue: Enqueue) -> FormStatus | None:
    """Whether the application's PDF is ready; asks the worker for it when it is not
    (once per content digest, again after ``FORM_RENDER_RETRY_SECONDS``)."""
    if app.state != FINAL_STATE:
        return None
    form = ensure_form(session, app, now)
    digest = content_digest(form_content(session, app))
    if is_fresh(form, digest):
        key = current_app.config["FORM_KEY"]
        return FormStatus(
            True, form.serial, form.rendered_at, code=format_code(verification_code(key, form.serial, digest))
        )
    retry = timedelta(seconds=current_app.config["FORM_RENDER_RETRY_SECONDS"])
    failed = form.failed_at is not None and form.requested_digest == digest
    if form.requested_digest != digest or form.requested_at is None or as_utc(form.requested_at) + retry <= now:
        form.requested_at, form.requested_digest = now, digest
        session.commit()
        enqueue(app.id)
        # With an in-process queue (tests) the render has happened by now.
        session.refresh(form)
        if is_fresh(form, digest):
            return form_status(session, app, now, enqueue)
        failed = form.failed_at is not None
    return FormStatus(False, form.serial, form.rendered_at, failed=failed)


def fresh_pdf(session: Session, app: Application) -> tuple[RegistrationForm, bytes] | None:
    """The cached PDF if it matches the application's content now, else None."""
    form = form_of(session, app.id)
    if form is None or app.state != FINAL_STATE:
        return None
    if not is_fresh(form, content_digest(form_content(session, app))):
        return None
    assert form.pdf is not None
    return form, form.pdf


def mark_downloaded(session: Session, form: RegistrationForm, now: datetime) -> None:
    """Remember the student's first download (the 流程页面's 下载报名表 已完成)."""
    if form.downloaded_at is None:
        form.downloaded_at = now
        session.commit()


# ------------------------------------------------------------------------------ rendering


def photo_data_uri(data: bytes | None) -> str:
    """The stored photo, scaled to the print box and re-encoded, as a data: URI ('' if unusable)."""
    if not data or image_kind(data[:8]) is None:
        return ""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.size[0] * image.size[1] > PHOTO_MAX_PIXELS:
                return ""
            image.load()
            picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        log.warning("stored photo cannot be decoded for the form: %s", exc.__class__.__name__)
        return ""
    picture.thumbnail(PHOTO_BOX)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def qr_data_uri(text: str) -> str:
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    # The standard's quiet zone of 4 modules: phone scanners (and OpenCV) miss codes without it.
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=6, border=4)
    qr.add_data(text)
    qr.make(fit=True)
    out = io.BytesIO()
    qr.make_image(fill_color="black", back_color="white").save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def _photo_bytes(session: Session, storage: Storage, app: Application) -> bytes | None:
    row = photo_row(session, app)
    if row is None or row.deleted_at is not None:
        return None
    try:
        return storage.get(row.storage_key)
    except StorageError:
        log.warning("application %s: photo %s missing from storage", app.uid, row.uid)
        return None


def _when(text: str) -> str:
    if not text:
        return ""
    try:
        return beijing_text(datetime.fromisoformat(text))
    except ValueError:
        return text


def _yuan(fen: Any) -> str:
    try:
        return f"{int(fen) / 100:.2f}元"
    except (TypeError, ValueError):
        return ""


def _xueji_text(x: dict[str, Any]) -> str:
    if x.get("status") == "found" and x.get("answer") == "correct":
        return "已验证"
    if x.get("status") == "found":
        return "已提交更正申请，经确认点审核"
    if x.get("status") == "not_found":
        return "未查询到，经确认点审核学历材料"
    return ""


@dataclass
class Printed:
    """Everything the template needs (the content plus what is derived for printing)."""

    content: dict[str, Any]
    serial: str
    code: str
    url: str
    qr: str
    photo: str
    title: str
    rendered_at: str
    display: dict[str, Any] = field(default_factory=dict)


def printed_form(
    content: dict[str, Any], serial: str, code: str, base_url: str, photo: bytes | None, now: datetime
) -> Printed:
    url = verify_url(base_url, serial, code)
    year = serial.split("-", 1)[0]
    display = {
        "mobile": mask_mobile(content["mobile"]),
        "amount": _yuan(content["order"]["amount_fen"]),
        "paid_at": _when(content["order"]["paid_at"]),
        "approved_at": _when(content["approved_at"]),
        "channel": CHANNELS.get(content["order"]["channel"], content["order"]["channel"]),
        "xueji": _xueji_text(content["xueji"]),
        "preferences": [{"label": preference_label(i), **c} for i, c in enumerate(content["preferences"])],
    }
    return Printed(
        content=content,
        serial=serial,
        code=format_code(code),
        url=url,
        qr=qr_data_uri(url),
        photo=photo_data_uri(photo),
        title=f"天津市{year}年高职升本考试报名表",
        rendered_at=beijing_text(now, "%Y年%m月%d日 %H:%M"),
        display=display,
    )


def form_html(printed: Printed) -> str:
    # The app's Jinja environment autoescapes .html templates: every value is text.
    return current_app.jinja_env.get_template(TEMPLATE).render(form=printed)


def render_form(
    session: Session, application_id: int, renderer: PdfRenderer, storage: Storage, now: datetime
) -> RegistrationForm | None:
    """Render and cache the PDF unless the cached one is still fresh. The worker's job."""
    app = session.get(Application, application_id)
    if app is None or app.state != FINAL_STATE:
        log.info("form render skipped: application %s is not approved", application_id)
        return None
    form = ensure_form(session, app, now)
    content = form_content(session, app)
    digest = content_digest(content)
    if is_fresh(form, digest):
        return form
    config = current_app.config
    code = verification_code(config["FORM_KEY"], form.serial, digest)
    printed = printed_form(
        content, form.serial, code, config["PUBLIC_BASE_URL"], _photo_bytes(session, storage, app), now
    )
    started = time.perf_counter()
    try:
        pdf = renderer.render(form_html(printed))
    except PdfError as exc:
        form.failed_at, form.last_error = now, str(exc)[:2000]
        session.commit()
        log.error("application %s: registration form %s not rendered: %s", app.uid, form.serial, exc)
        raise
    form.pdf, form.digest, form.layout = pdf, digest, LAYOUT
    form.rendered_at, form.render_ms = now, int((time.perf_counter() - started) * 1000)
    form.failed_at, form.last_error = None, ""
    if digest not in (form.issued or []):
        form.issued = [*(form.issued or []), digest]
    session.commit()
    log.info("application %s: registration form %s rendered (%d bytes)", app.uid, form.serial, len(pdf))
    return form


def stale_applications(session: Session, now: datetime, limit: int = 200) -> list[int]:
    """Approved applications the periodic sweep should ask a render for: no form yet, no PDF
    yet (asked again every ten retry periods), or changed since the PDF was made (asked once
    per change: the render itself compares digests). Marks them requested."""
    retry = timedelta(seconds=current_app.config["FORM_RENDER_RETRY_SECONDS"] * 10)
    form = RegistrationForm
    rows = session.execute(
        select(Application.id, form.id)
        .outerjoin(form, form.application_id == Application.id)
        .where(
            Application.state == FINAL_STATE,
            or_(
                form.id.is_(None),
                and_(form.pdf.is_(None), or_(form.requested_at.is_(None), form.requested_at < now - retry)),
                and_(
                    Application.updated_at > form.rendered_at,
                    or_(form.requested_at.is_(None), form.requested_at < Application.updated_at),
                ),
            ),
        )
        .order_by(Application.id)
        .limit(limit)
    ).all()
    marked = [form_id for _, form_id in rows if form_id is not None]
    for application_id, form_id in rows:
        if form_id is None:  # the serial is assigned now, so the row can remember the request
            app = session.get(Application, application_id)
            assert app is not None
            marked.append(ensure_form(session, app, now).id)
    if marked:
        session.execute(update(form).where(form.id.in_(marked)).values(requested_at=now))
        session.commit()
    return [application_id for application_id, _ in rows]

"""The 报名表 (2.12): its content, serial number, verification code, PDF rendering and cache.

- The *content* is everything the form prints (basic information, 志愿, 确认点, payment,
  the photo's SHA-256) as a plain dict; its *digest* is the SHA-256 of its canonical JSON.
- The *serial* (``2027-NK01-000123``: exam year, 确认点, running number) is assigned once per
  application and never changes.
- The *verification code* is a keyed HMAC over serial and digest (``FORM_KEY``): whoever
  holds a paper form can check on the public verify page that it was issued by us and
  that the application still says what the paper says.
- The PDF is cached in ``RegistrationForm``; when the content digest changes it is stale and
  rendered again by the worker (``gzsb.worker.tasks``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from gzsb.adapters.pdf import PdfError, PdfRenderer
from gzsb.adapters.storage import Storage, StorageError
from gzsb.common.beijing import BEIJING, as_utc, beijing_text
from gzsb.common.security import mask_id_number, mask_mobile, mask_name
from gzsb.enrollment.catalog import image_kind
from gzsb.enrollment.steps import preference_label
from gzsb.errors import ConflictError
from gzsb.models import (
    Account,
    Application,
    ConfirmationPoint,
    HistoryEvent,
    Institution,
    Major,
    RegistrationForm,
    Upload,
)
from gzsb.payments.service import current_order
from gzsb.regform.names import APPROVED, REGISTRATION
from gzsb.store import FLOWS

log = logging.getLogger(__name__)

FINAL_STATE = APPROVED
# Bump when the template changes: cached PDFs are rendered again, verification codes (over
# the content only) stay valid.
LAYOUT = 1
TEMPLATE = "forms/registration_form.html"
CODE_LENGTH = 16  # base32 characters = 80 bits of the HMAC
PHOTO_BOX = (354, 472)  # pixels: 30 × 40 mm at 300 dpi
PHOTO_MAX_PIXELS = 40_000_000
CHANNELS = {"alipay": "支付宝", "wechat": "微信支付", "unionpay": "银联", "sandbox": "模拟支付"}

VALID, CHANGED, INVALID = "valid", "changed", "invalid"


# ------------------------------------------------------------------------------ content


def _photo_row(session: Session, app: Application) -> Upload | None:
    key = str((app.data or {}).get("identity", {}).get("photo") or "")
    if not key:
        return None
    return session.scalars(select(Upload).where(Upload.uid == key, Upload.application_id == app.id)).first()


def _catalogue_names(session: Session, choices: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[str, str]]:
    """Names for choices recorded without them (the catalogue was not imported then)."""
    codes = {str(c.get("institution", "")) for c in choices}
    rows = session.execute(
        select(Institution.code, Institution.name, Major.code, Major.name)
        .join(Major, Major.institution_id == Institution.id, isouter=True)
        .where(Institution.code.in_(codes))
    ).all()
    names: dict[tuple[str, str], tuple[str, str]] = {}
    for inst_code, inst_name, major_code, major_name in rows:
        names[(inst_code, "")] = (inst_name, "")
        if major_code is not None:
            names[(inst_code, major_code)] = (inst_name, major_name)
    return names


def _approved_at(session: Session, app: Application) -> str:
    at = session.scalar(
        select(HistoryEvent.at)
        .where(HistoryEvent.application_id == app.id, HistoryEvent.to_state == FINAL_STATE)
        .order_by(HistoryEvent.seq.desc())
        .limit(1)
    )
    return at or ""


def form_content(session: Session, app: Application) -> dict[str, Any]:
    """What the form prints, as plain JSON values (no bytes are read: the photo is its hash)."""
    data = app.data or {}
    info = data.get("basic_info") or {}
    account = session.get(Account, app.account_id)
    point = session.get(ConfirmationPoint, app.confirmation_point_id) if app.confirmation_point_id else None
    choices = [dict(c) for c in data.get("preferences") or []]
    if any(not c.get("institution_name") or not c.get("major_name") for c in choices):
        names = _catalogue_names(session, choices)
        for c in choices:
            inst, major = names.get((c.get("institution", ""), c.get("major", "")), ("", ""))
            c["institution_name"] = (
                c.get("institution_name") or inst or names.get((c.get("institution", ""), ""), ("",))[0]
            )
            c["major_name"] = c.get("major_name") or major
    xueji = data.get("xueji") or {}
    record = xueji.get("record") or {}
    order = current_order(session, app.id)
    photo = _photo_row(session, app)
    return {
        "name": info.get("name") or (account.name if account else ""),
        "sex": info.get("sex", ""),
        "ethnicity": info.get("ethnicity", ""),
        "political_status": info.get("political_status", ""),
        "id_number": info.get("id_number", ""),
        "birth_date": info.get("birth_date", ""),
        "mobile": info.get("mobile", ""),
        "address": info.get("address", ""),
        "postcode": info.get("postcode", ""),
        "college": info.get("college", ""),
        "major": info.get("major", ""),
        "graduation_year": info.get("graduation_year", ""),
        "category": info.get("category", ""),
        "point": {
            "code": point.code if point else info.get("confirmation_point", ""),
            "name": point.name if point else "",
            "address": point.address if point else "",
        },
        "preferences": [
            {
                "institution": c.get("institution", ""),
                "institution_name": c.get("institution_name", ""),
                "major": c.get("major", ""),
                "major_name": c.get("major_name", ""),
            }
            for c in choices
        ],
        "xueji": {
            "status": xueji.get("status", ""),
            "answer": xueji.get("answer") or "",
            "school": record.get("school", ""),
            "major": record.get("major", ""),
            "level": record.get("level", ""),
            "graduation_year": record.get("graduation_year", ""),
        },
        "order": {
            "number": order.get("number", ""),
            "trade_no": order.get("trade_no", ""),
            "paid_at": order.get("paid_at", ""),
            "channel": order.get("channel", ""),
            "amount_fen": order.get("amount_fen", 0),
        },
        # The row survives the file's deletion by retention, so the digest does too.
        "photo": photo.sha256 if photo is not None else "",
        "approved_at": _approved_at(session, app),
    }


def canonical(content: dict[str, Any]) -> str:
    return json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def content_digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(content).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------ codes


def verification_code(key: str, serial: str, digest: str) -> str:
    mac = hmac.new(key.encode("utf-8"), f"gzsb-form\n{serial}\n{digest}".encode(), hashlib.sha256).digest()
    return base64.b32encode(mac[:10]).decode("ascii")  # 10 bytes → exactly 16 characters


def format_code(code: str) -> str:
    """ABCD-EFGH-JKLM-NPQR: easier to read off paper and type."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def normalize_code(text: str) -> str:
    return "".join(ch for ch in (text or "").upper() if ch.isalnum())[: CODE_LENGTH + 1]


def verify_url(base: str, serial: str, code: str) -> str:
    return f"{base.rstrip('/')}/verify/{serial}?code={code}"


# ------------------------------------------------------------------------------ serials


def exam_year(session: Session, app: Application, now: datetime) -> int:
    """The year of the registration window's close (the exam follows it), else this year."""
    flow = FLOWS.by_version(session, app.flow_version_id)
    window = flow.windows.get(REGISTRATION)
    moment = window.closes if window is not None else now
    return as_utc(moment).astimezone(BEIJING).year


def _point_code(session: Session, app: Application) -> str:
    point = session.get(ConfirmationPoint, app.confirmation_point_id) if app.confirmation_point_id else None
    code = point.code if point else str(((app.data or {}).get("basic_info") or {}).get("confirmation_point", ""))
    return (code or "TJ00").upper()[:16]


def _form_of(session: Session, application_id: int) -> RegistrationForm | None:
    return session.scalars(select(RegistrationForm).where(RegistrationForm.application_id == application_id)).first()


def ensure_form(session: Session, app: Application, now: datetime, attempts: int = 20) -> RegistrationForm:
    """The application's form row; the first call assigns the next serial of its 确认点.

    Called where nothing else is pending in the session (it commits). Two processes may
    pick the same number at once: the unique constraint lets one win (on SQLite the loser
    may instead find the database changed under its read), the other tries the next
    number, or finds the row the winner made for this same application.
    """
    form = _form_of(session, app.id)
    if form is not None:
        return form
    app_id, uid = app.id, app.uid
    year, point = exam_year(session, app, now), _point_code(session, app)
    for attempt in range(attempts):
        latest = session.scalar(
            select(func.max(RegistrationForm.number)).where(
                RegistrationForm.year == year, RegistrationForm.point_code == point
            )
        )
        number = (latest or 0) + 1
        form = RegistrationForm(
            application_id=app_id,
            serial=f"{year}-{point}-{number:06d}",
            year=year,
            point_code=point,
            number=number,
            issued=[],
            created_at=now,
        )
        session.add(form)
        try:
            session.commit()
        except (IntegrityError, OperationalError) as exc:
            session.rollback()
            existing = _form_of(session, app_id)
            if existing is not None:
                return existing
            log.info("form serial %s taken meanwhile (%s), trying again", form.serial, type(exc.orig).__name__)
            time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # let the winner finish
            continue
        log.info("application %s: registration form serial %s assigned", uid, form.serial)
        return form
    raise ConflictError(f"could not assign a form serial for application {uid} after {attempts} attempts")


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
    form = _form_of(session, app.id)
    if form is None or app.state != FINAL_STATE:
        return None
    if not is_fresh(form, content_digest(form_content(session, app))):
        return None
    assert form.pdf is not None
    return form, form.pdf


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
    row = _photo_row(session, app)
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


# ------------------------------------------------------------------------------ verify


@dataclass(frozen=True)
class Verdict:
    status: str  # valid / changed / invalid
    serial: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def verify(session: Session, serial: str, code: str, key: str) -> Verdict:
    """Is a paper form genuine, and does the application still say what it says?

    Unknown serials and wrong codes get the same answer, and nothing is shown unless the
    code matches: the page does not help anyone find out who applied.
    """
    given = normalize_code(code)
    form = session.scalars(select(RegistrationForm).where(RegistrationForm.serial == serial[:32])).first()
    if form is None or len(given) != CODE_LENGTH:
        return Verdict(INVALID)
    app = session.get(Application, form.application_id)
    if app is None or app.state != FINAL_STATE:
        return Verdict(INVALID)
    content = form_content(session, app)
    current = verification_code(key, form.serial, content_digest(content))
    if hmac.compare_digest(given, current):
        status = VALID
    elif any(hmac.compare_digest(given, verification_code(key, form.serial, d)) for d in form.issued or []):
        status = CHANGED
    else:
        return Verdict(INVALID)
    details = {
        "name": mask_name(content["name"]),
        "id_number": mask_id_number(content["id_number"]),
        "point": content["point"]["name"] or content["point"]["code"],
        "preferences": [
            {
                "label": preference_label(i),
                "institution": c["institution_name"] or c["institution"],
                "major": c["major_name"] or c["major"],
            }
            for i, c in enumerate(content["preferences"])
        ],  # fmt: skip
    }
    return Verdict(status, form.serial, details)

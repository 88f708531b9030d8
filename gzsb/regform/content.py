"""The 报名表's content, serial number and verification code (2.12), and the public check.

- The *content* is everything the form prints (basic information, 志愿, 确认点, payment,
  the photo's SHA-256) as a plain dict; its *digest* is the SHA-256 of its canonical JSON.
- The *serial* (``2027-NK01-000123``: exam year, 确认点, running number) is assigned once per
  application and never changes.
- The *verification code* is a keyed HMAC over serial and digest (``FORM_KEY``): whoever
  holds a paper form can check on the public verify page that it was issued by us and
  that the application still says what the paper says.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from gzsb.common.beijing import BEIJING, as_utc
from gzsb.common.security import basic_info_of, mask_id_number, mask_name
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
CODE_LENGTH = 16  # base32 characters = 80 bits of the HMAC

VALID, CHANGED, INVALID = "valid", "changed", "invalid"


# ------------------------------------------------------------------------------ content


def photo_row(session: Session, app: Application) -> Upload | None:
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
    info = basic_info_of(data)  # decrypted: the form prints the ID number
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
    photo = photo_row(session, app)
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


def form_of(session: Session, application_id: int) -> RegistrationForm | None:
    return session.scalars(select(RegistrationForm).where(RegistrationForm.application_id == application_id)).first()


def ensure_form(session: Session, app: Application, now: datetime, attempts: int = 20) -> RegistrationForm:
    """The application's form row; the first call assigns the next serial of its 确认点.

    Called where nothing else is pending in the session (it commits). Two processes may
    pick the same number at once: the unique constraint lets one win (on SQLite the loser
    may instead find the database changed under its read), the other tries the next
    number, or finds the row the winner made for this same application.
    """
    form = form_of(session, app.id)
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
            existing = form_of(session, app_id)
            if existing is not None:
                return existing
            log.info("form serial %s taken meanwhile (%s), trying again", form.serial, type(exc.orig).__name__)
            time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # let the winner finish
            continue
        log.info("application %s: registration form serial %s assigned", uid, form.serial)
        return form
    raise ConflictError(f"could not assign a form serial for application {uid} after {attempts} attempts")


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

"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gzsb.accounts.service import hash_password
from gzsb.bootstrap import storage, vault
from gzsb.cli.demo import DEMO_PASSWORD, add_demo_student, basic_info, demo_student
from gzsb.common.uploads import CleanImage, store_image
from gzsb.extensions import db
from gzsb.models import Application
from gzsb.store import start_application
from gzsb.workflow.engine import Actor

__all__ = ["basic_info", "demo_student", "student_payload"]


@dataclass
class Applicant:
    account_id: int
    application_id: int
    index: int
    category: str = "普通"
    password: str = DEMO_PASSWORD

    @property
    def actor(self) -> Actor:
        return Actor(f"account:{self.account_id}", "student")


# Argon2 is slow on purpose; every test account shares one hash of the demo password.
PASSWORD_HASH = hash_password(DEMO_PASSWORD)


def new_applicant(index: int, *, in_registry: bool = True, category: str = "普通") -> Applicant:
    """Demo student ``index``: account, registry record unless told otherwise, and an
    application on the current flow (in an app context)."""
    account = add_demo_student(
        db.session, vault(), demo_student(index), password_hash=PASSWORD_HASH, in_registry=in_registry
    )
    db.session.commit()
    application = start_application(db.session, account.id, "tianjin-gzsb")
    return Applicant(account.id, application.id, index, category)


SYSTEM = Actor.system("test")
MATCHED = {"matched": True, "distance": 0.3, "threshold": 0.6, "model": "Dlib"}
MISMATCHED = {"matched": False, "distance": 0.8, "threshold": 0.6, "model": "Dlib", "reason": "人脸不一致"}
CONSENT = {"agree": True}  # give_face_consent, needed before upload_identity


def student_payload(applicant: Applicant, **overrides: Any) -> dict[str, Any]:
    info = basic_info(demo_student(applicant.index), "NK01")
    info["category"] = applicant.category
    info.update(overrides)
    return info


# A 1×1 PNG: the identity steps check their upload ids name the application's own live
# uploads, so tests store images as the upload pages would (no image work needed).
PIXEL = CleanImage(
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
    b"\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82",
    "png",
    1,
    1,
)


def identity_uploads(who: Applicant, kinds: tuple[str, ...] = ("photo", "id_card")) -> dict[str, str]:
    """A 证件照 and an ID-card image stored as the application's uploads; their ids by kind."""
    application = db.session.get(Application, who.application_id)
    return {
        kind: store_image(
            db.session,
            storage(),
            application_id=application.id,
            application_uid=application.uid,
            kind=kind,
            image=PIXEL,
        ).uid
        for kind in kinds
    }


def to_manual_identity(eng: Any, who: Applicant) -> None:
    """Through 信息确认 to a 确认点 manual identity request (with images): one SMS queued."""
    to_confirming(eng, who)
    eng.fire(who.application_id, "confirm_info", who.actor, {})
    eng.fire(who.application_id, "request_manual_identity", who.actor, {**identity_uploads(who), "note": "无身份证"})


def to_confirming(eng, who) -> None:
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    eng.fire(who.application_id, "check_xueji", who.actor, {})
    record = db.session.get(Application, who.application_id)
    if (record.data.get("xueji") or {}).get("status") == "found":  # none for in_registry=False
        eng.fire(who.application_id, "confirm_xueji", who.actor, {"answer": "correct"})
    eng.fire(
        who.application_id, "submit_preferences", who.actor, {"choices": [{"institution": "10060", "major": "080901"}]}
    )


def to_verified(eng, who) -> None:
    """Through 身份认证: consent, upload, a matching face."""
    to_confirming(eng, who)
    eng.fire(who.application_id, "confirm_info", who.actor, {})
    eng.fire(who.application_id, "give_face_consent", who.actor, CONSENT)
    eng.fire(who.application_id, "upload_identity", who.actor, identity_uploads(who))
    eng.fire(who.application_id, "face_matched", SYSTEM, MATCHED)


def to_payment(eng, who) -> None:
    to_verified(eng, who)
    eng.fire(who.application_id, "create_order", who.actor, {})


def order_of(application_id: int) -> dict[str, Any]:
    """The application's current order as pages print it (the payment_orders row)."""
    from gzsb.payments.service import current_order

    return current_order(db.session, application_id)


def pay(eng, who) -> Any:
    order = order_of(who.application_id)
    payload = {"order": order["number"], "amount_fen": order["amount_fen"], "trade_no": "T1", "channel": "alipay"}
    return eng.fire(who.application_id, "payment_succeeded", SYSTEM, payload)


# -- the web layer as a browser sees it (Flask test client) ------------------------------

CSRF_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client, path: str) -> str:
    """The CSRF token of the form on ``path``."""
    match = CSRF_TOKEN.search(client.get(path).get_data(as_text=True))
    assert match, f"{path} has no CSRF token"
    return match.group(1)


def log_in(client, login: str, password: str = DEMO_PASSWORD) -> None:
    response = client.post(
        "/login", data={"login": login, "password": password, "csrf_token": csrf_token(client, "/login")}
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def log_in_student(client, who: Applicant) -> None:
    log_in(client, demo_student(who.index).id_number, who.password)

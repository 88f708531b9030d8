"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gzsb.demo import basic_info, demo_student
from gzsb.extensions import db
from gzsb.models import Application
from gzsb.workflow.engine import Actor

__all__ = ["basic_info", "demo_student", "student_payload"]


@dataclass
class Applicant:
    account_id: int
    application_id: int
    index: int
    password: str = "Demo@2026gzsb"

    @property
    def actor(self) -> Actor:
        return Actor(f"account:{self.account_id}", "student")


SYSTEM = Actor.system("test")
MATCHED = {"matched": True, "distance": 0.3, "threshold": 0.6, "model": "Dlib"}
MISMATCHED = {"matched": False, "distance": 0.8, "threshold": 0.6, "model": "Dlib", "reason": "人脸不一致"}
UPLOAD = {"photo": "p1", "id_card": "c1"}


def student_payload(applicant: Applicant, **overrides: Any) -> dict[str, Any]:
    info = basic_info(demo_student(applicant.index), "NK01")
    info["category"] = getattr(applicant, "category", "普通")
    info.update(overrides)
    return info


def to_confirming(eng, who) -> None:
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    eng.fire(who.application_id, "check_xueji", who.actor, {})
    eng.fire(who.application_id, "confirm_xueji", who.actor, {"answer": "correct"})
    eng.fire(
        who.application_id, "submit_preferences", who.actor, {"choices": [{"institution": "10060", "major": "080901"}]}
    )


def to_payment(eng, who) -> None:
    to_confirming(eng, who)
    eng.fire(who.application_id, "confirm_info", who.actor, {})
    eng.fire(who.application_id, "upload_identity", who.actor, UPLOAD)
    eng.fire(who.application_id, "face_matched", SYSTEM, MATCHED)
    eng.fire(who.application_id, "create_order", who.actor, {})


def pay(eng, who) -> Any:
    order = db.session.get(Application, who.application_id).data["order"]
    payload = {"order": order["number"], "amount_fen": order["amount_fen"], "trade_no": "T1", "channel": "alipay"}
    return eng.fire(who.application_id, "payment_succeeded", SYSTEM, payload)

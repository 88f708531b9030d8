"""Shared set-up: an app on a SQLite file, a clock inside the registration window,
applicants created without the per-account Argon2 cost, and the 16-event path."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gzsb.accounts.service import hash_password
from gzsb.app import create_app
from gzsb.bootstrap import storage, vault
from gzsb.cli.demo import CATALOG_CSV, add_demo_student, basic_info, demo_student
from gzsb.common.uploads import CleanImage, store_image
from gzsb.config import ROOT, TestConfig
from gzsb.enrollment.catalog import import_catalog
from gzsb.extensions import db
from gzsb.models import Application, ConfirmationPoint
from gzsb.payments import orders
from gzsb.staff.steps import required_documents
from gzsb.store import FLOWS, publish, start_application
from gzsb.workflow.engine import Actor, Engine, Fired
from gzsb.workflow.loader import load_flow_file

OUT = Path(__file__).resolve().parent / "out"
FLOW_FILE = ROOT / "flows" / "enrollment.yaml"
FLOW_NAME = "tianjin-gzsb"
# Inside the shipped flow's registration window (2026-11-16 → 2027-01-12, Beijing time).
IN_WINDOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
CATEGORY = "退役士兵"  # a reviewed category: payment leads to materials_pending
SYSTEM = Actor.system("bench")

MATCHED = {"matched": True, "distance": 0.38, "threshold": 0.6, "model": "Dlib"}
MISMATCHED = {"matched": False, "distance": 0.8, "threshold": 0.6, "model": "Dlib", "reason": "人脸不一致"}

# (event, fired by the student?, payload or the name of a payload built per applicant).
# Sixteen legal events: the face check fails once, the first order expires.
PATH: tuple[tuple[str, bool, Any], ...] = (
    ("accept_pledge", True, {"agree": True}),
    ("submit_basic_info", True, "basic_info"),
    ("check_xueji", True, {}),
    ("confirm_xueji", True, {"answer": "correct"}),
    ("submit_preferences", True, {"choices": [{"institution": "10060", "major": "080901"}]}),
    ("confirm_info", True, {}),
    ("give_face_consent", True, {"agree": True}),
    ("upload_identity", True, "identity"),
    ("face_mismatch", False, MISMATCHED),
    ("upload_identity", True, "identity"),
    ("face_matched", False, MATCHED),
    ("create_order", True, {}),
    ("payment_expired", False, {}),
    ("create_order", True, {}),
    ("payment_succeeded", False, "payment"),
    ("submit_materials", True, "materials"),
)
EXPECTED_END = "materials_review"


class Clock:
    """The app's clock; moves forward a little on every read so events are ordered."""

    def __init__(self, now: datetime = IN_WINDOW, step: timedelta = timedelta(milliseconds=250)) -> None:
        self.now = now
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def make_app(path: Path | str, clock: Callable[[], datetime], *, fresh: bool = True) -> Flask:
    """Like tests/conftest._make_app, on a file DB (the app's listener sets WAL etc.) or,
    when ``path`` is a URL text (``postgresql+psycopg://…``), on that database."""
    uri = path if isinstance(path, str) else f"sqlite:///{path.resolve()}"
    config = type("BenchConfig", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": uri})
    app = create_app(config, clock=clock)
    if fresh:
        with app.app_context():
            db.drop_all()
            db.create_all()
            publish(db.session, load_flow_file(FLOW_FILE))
            db.session.add(ConfirmationPoint(code="NK01", name="南开区招生考试中心"))
            db.session.commit()
            import_catalog(db.session, CATALOG_CSV)  # 志愿 are checked against it
    return app


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass(frozen=True)
class Applicant:
    index: int
    account_id: int
    application_id: int

    @property
    def actor(self) -> Actor:
        return Actor(f"account:{self.account_id}", "student")


def add_applicants(count: int, first_index: int = 1) -> list[Applicant]:
    """Accounts, registry records and started applications (in an app context).

    One Argon2 hash is shared by all accounts: creating them is set-up, not measured."""
    if first_index + count > 1000:
        raise ValueError("demo_student() numbers are unique only below index 1000")
    v = vault()
    password_hash = hash_password("Bench@2026gzsb")
    made: list[Applicant] = []
    for index in range(first_index, first_index + count):
        account = add_demo_student(db.session, v, demo_student(index), password_hash=password_hash, in_registry=True)
        made.append(Applicant(index, account.id, 0))
    db.session.commit()
    out = []
    for who in made:
        application = start_application(db.session, who.account_id, FLOW_NAME)
        out.append(Applicant(who.index, who.account_id, application.id))
    return out


def payload_for(who: Applicant, spec: Any) -> dict[str, Any]:
    if spec == "basic_info":
        info = basic_info(demo_student(who.index), "NK01")
        info["category"] = CATEGORY
        return info
    if spec == "payment":
        order = orders.current(db.session, who.application_id)
        assert order is not None
        return {"order": order.number, "amount_fen": order.amount_fen, "trade_no": "T1", "channel": "alipay"}
    if spec == "materials":
        # One photo per document the applicant's 考生类别 requires (the step refuses fewer).
        app = db.session.get(Application, who.application_id)
        documents = required_documents(FLOWS.by_version(db.session, app.flow_version_id), app.data or {})
        return {"files": [bench_upload(who, "material", slot=d.key) for d in documents]}
    if spec == "identity":
        return {kind: bench_upload(who, kind) for kind in ("photo", "id_card")}
    return dict(spec)


# A 1×1 PNG: the identity and materials steps check their ids name the application's live
# uploads, so one is stored (as the upload pages would) without the benchmark's time going
# to image work.
_PIXEL = CleanImage(
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
    b"\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82",
    "png",
    1,
    1,
)


def bench_upload(who: Applicant, kind: str, slot: str | None = None) -> str:
    uid = db.session.get(Application, who.application_id).uid
    app_id = who.application_id
    upload = store_image(db.session, storage(), application_id=app_id, application_uid=uid, kind=kind, image=_PIXEL)
    if slot is not None:
        upload.slot = slot
    return upload.uid


def fire_step(eng: Engine, who: Applicant, step: int) -> Fired:
    event, by_student, spec = PATH[step]
    return eng.fire(who.application_id, event, who.actor if by_student else SYSTEM, payload_for(who, spec))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database a bench runs on when it is missing (trust auth, as here)."""
    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}).first():
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()

"""Demo data: confirmation points, staff accounts and applicants in every state of the flow.

Every applicant is driven to its state through the engine, so its history is real and
`flask audit verify` passes on a freshly seeded database.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from gzsb.accounts.idcard import check_digit
from gzsb.accounts.service import create_account, hash_password
from gzsb.admin.service import Operator
from gzsb.bootstrap import engine, vault
from gzsb.cli.demo_images import demo_appeal, demo_identity_images, demo_material, portrait_png
from gzsb.cli.names import (
    ACCEPT_PLEDGE,
    APPROVED,
    CHECK_XUEJI,
    CONFIRM_INFO,
    CONFIRM_XUEJI,
    CONFIRMING,
    CREATE_ORDER,
    DEMO,
    FACE_CHECKING,
    FACE_MATCHED,
    FREEZE_FOR_APPEAL,
    FROZEN,
    GIVE_FACE_CONSENT,
    IDENTITY_PENDING,
    IDENTITY_VERIFIED,
    MANUAL_IDENTITY,
    MATERIALS_PENDING,
    MATERIALS_REJECTED,
    MATERIALS_REVIEW,
    PAYMENT_PENDING,
    PAYMENT_SUCCEEDED,
    PLEDGED,
    PREFERENCES,
    REGISTRATION,
    REJECT_MATERIALS,
    REQUEST_MANUAL_IDENTITY,
    STARTED,
    SUBMIT_BASIC_INFO,
    SUBMIT_MATERIALS,
    SUBMIT_PREFERENCES,
    UPLOAD_IDENTITY,
)
from gzsb.common.beijing import BEIJING, as_utc
from gzsb.common.security import Vault, mask_id_number
from gzsb.config import ROOT
from gzsb.enrollment.catalog import import_catalog
from gzsb.enrollment.registry import import_registry
from gzsb.errors import ConfigurationError
from gzsb.extensions import db
from gzsb.models import Account, Application, ConfirmationPoint, RegistryRecord
from gzsb.onsite import service as onsite
from gzsb.payments.service import current_order
from gzsb.staff.steps import required_documents
from gzsb.store import FLOWS, start_application
from gzsb.workflow.engine import Actor, Engine
from gzsb.workflow.spec import FlowSpec

log = logging.getLogger(__name__)

DEMO_PASSWORD = "Demo@2026gzsb"
STAFF = (
    # (role, name, id number seed, mobile, confirmation point code)
    ("staff", "确认点老师", "12010419800101001", "13900000001", "NK01"),
    ("admin", "系统管理员", "12010419800102002", "13900000002", None),
    # A second admin: flow changes need a proposer and a different approver.
    ("admin", "复核管理员", "12010419800104004", "13900000004", None),
    ("auditor", "审计员", "12010419800103003", "13900000003", None),
)
CONFIRMATION_POINTS = (
    ("NK01", "南开区招生考试中心", "天津市南开区"),
    ("HX01", "河西区招生考试中心", "天津市河西区"),
    ("BH01", "滨海新区招生考试中心", "天津市滨海新区"),
)
# The demo's reference data: a catalogue of real Tianjin institutions that take 高职升本
# students, and registry records (with drawn placeholder photos) of the demo students.
DATA = ROOT / "data"
CATALOG_CSV = DATA / "catalog.csv"
REGISTRY_CSV = DATA / "registry_demo.csv"
REGISTRY_PHOTOS = DATA / "registry_photos"
REGISTRY_DEMO_STUDENTS = 40
# Registry records that differ from what the demo student types (for the 信息有误 path).
REGISTRY_DISCREPANCIES = {6: {"graduation_year": "2026"}}
SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗"
GIVEN = ("子涵", "浩然", "欣怡", "宇轩", "梓萱", "俊杰", "雨桐", "嘉怡", "文博", "思远")


def id_number(first17: str) -> str:
    return first17 + check_digit(first17)


@dataclass(frozen=True)
class Student:
    index: int
    name: str
    id_number: str
    mobile: str
    category: str
    in_registry: bool


def demo_student(index: int) -> Student:
    # Odd sequence digit: 男, even: 女 (GB 11643).
    sex_digit = index % 10
    number = id_number(f"12010420030{(index % 9) + 1}{(index % 28) + 1:02d}{index // 10 % 100:02d}{sex_digit}")
    name = SURNAMES[index % len(SURNAMES)] + GIVEN[index % len(GIVEN)]
    category = "退役士兵" if index % 4 == 3 else "普通"
    return Student(index, name, number, f"1370000{index:04d}", category, in_registry=index % 5 != 4)


def basic_info(student: Student, point: str) -> dict[str, Any]:
    number = student.id_number
    return {
        "name": student.name,
        "sex": "男" if int(number[16]) % 2 else "女",
        "ethnicity": "汉族",
        "political_status": "共青团员",
        "id_number": number,
        "birth_date": f"{number[6:10]}-{number[10:12]}-{number[12:14]}",
        "mobile": student.mobile,
        "address": "天津市南开区卫津路92号",
        "postcode": "300072",
        "college": "天津职业大学",
        "major": "计算机应用技术",
        "graduation_year": 2027,
        "category": student.category,
        "confirmation_point": point,
    }


def registry_fields(student: Student) -> dict[str, Any]:
    """What the demo registry holds for a demo student (besides the ID number and photo)."""
    return {
        "name": student.name,
        "school": "天津职业大学",
        "major": "计算机应用技术",
        "level": "专科",
        "study_form": "普通全日制",
        "graduation_year": 2027,
    }


def registry_csv_row(student: Student, photo: str = "") -> dict[str, str]:
    """The student's line of a registry CSV (``flask registry import``), column → text."""
    fields = {k: str(v) for k, v in registry_fields(student).items()}
    return {"id_number": student.id_number, **fields, "photo": photo}


def registry_record(session: Any, vault: Vault, student: Student) -> RegistryRecord | None:
    index = vault.index(student.id_number)
    return session.scalars(select(RegistryRecord).where(RegistryRecord.id_number_index == index)).first()


def add_demo_student(
    session: Any,
    vault: Vault,
    student: Student,
    *,
    password_hash: str,
    in_registry: bool | None = None,
    photo: bytes | None = None,
) -> Account:
    """The student's account and, when they are in the registry and not yet there, their
    registry record (flushed, not committed)."""
    account = create_account(
        session, vault, name=student.name, id_number=student.id_number, password_hash=password_hash,
        mobile=student.mobile,
    )  # fmt: skip
    wanted = student.in_registry if in_registry is None else in_registry
    if wanted and registry_record(session, vault, student) is None:
        record = RegistryRecord(id_number_index=vault.index(student.id_number), photo=photo, **registry_fields(student))
        session.add(record)
        session.flush()
    return account


def write_registry_demo(csv_path: Path = REGISTRY_CSV, photos: Path = REGISTRY_PHOTOS) -> int:
    """(Re)write the demo registry CSV and its photos: the demo students found in the
    registry (every fifth is not, to show the 学历认证报告 path). Returns the row count."""
    photos.mkdir(parents=True, exist_ok=True)
    columns = list(registry_csv_row(demo_student(1)))
    rows = []
    for index in range(1, REGISTRY_DEMO_STUDENTS + 1):
        student = demo_student(index)
        if not student.in_registry:
            continue
        photo = f"student{index:03d}.png"
        (photos / photo).write_bytes(portrait_png(index))
        row = registry_csv_row(student, photo=photo)
        row.update(REGISTRY_DISCREPANCIES.get(index, {}))
        rows.append(row)
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def import_reference_data(session: Any, v: Any) -> list[str]:
    """The catalogue and the demo registry from data/ (upserts: safe to repeat)."""
    lines = []
    if CATALOG_CSV.exists():
        report = import_catalog(session, CATALOG_CSV)
        lines.append(report.summary())
    if REGISTRY_CSV.exists():
        report = import_registry(session, v, REGISTRY_CSV, REGISTRY_PHOTOS)
        lines.append(report.summary())
    for line in lines:
        log.info("demo: %s", line)
    return lines


STUDENT, SYSTEM, STAFF_ROLE = "student", "system", "staff"
# Routes to each state: (event, who, payload). "{…}" payloads are filled per applicant.
TO_CONFIRMING = [
    (ACCEPT_PLEDGE, STUDENT, {"agree": True}),
    (SUBMIT_BASIC_INFO, STUDENT, "basic_info"),
    (CHECK_XUEJI, STUDENT, {}),
    (CONFIRM_XUEJI, STUDENT, {"answer": "correct"}),
    (
        SUBMIT_PREFERENCES,
        STUDENT,
        {"choices": [{"institution": "10060", "major": "080901"}, {"institution": "10066", "major": "080902"}]},
    ),
]
TO_IDENTITY = [*TO_CONFIRMING, (CONFIRM_INFO, STUDENT, {})]
TO_CHECKING = [
    *TO_IDENTITY,
    (GIVE_FACE_CONSENT, STUDENT, {"agree": True}),
    (UPLOAD_IDENTITY, STUDENT, "identity"),
]
MATCHED = {"matched": True, "distance": 0.38, "threshold": 0.6, "model": "Dlib"}
TO_VERIFIED = [*TO_CHECKING, (FACE_MATCHED, SYSTEM, MATCHED)]
TO_ORDER = [*TO_VERIFIED, (CREATE_ORDER, STUDENT, {})]
PAID = (PAYMENT_SUCCEEDED, SYSTEM, "payment")
ROUTES: dict[str, list[tuple[str, str, Any]]] = {
    STARTED: [],
    PLEDGED: TO_CONFIRMING[:1],
    PREFERENCES: TO_CONFIRMING[:3],
    CONFIRMING: TO_CONFIRMING,
    IDENTITY_PENDING: TO_IDENTITY,
    FACE_CHECKING: TO_CHECKING,
    MANUAL_IDENTITY: [*TO_IDENTITY, (REQUEST_MANUAL_IDENTITY, STUDENT, "manual_request")],
    IDENTITY_VERIFIED: TO_VERIFIED,
    PAYMENT_PENDING: TO_ORDER,
    MATERIALS_PENDING: [*TO_ORDER, PAID],
    MATERIALS_REVIEW: [*TO_ORDER, PAID, (SUBMIT_MATERIALS, STUDENT, "materials")],
    MATERIALS_REJECTED: [
        *TO_ORDER,
        PAID,
        (SUBMIT_MATERIALS, STUDENT, "materials"),
        (REJECT_MATERIALS, STAFF_ROLE, {"reason": "材料不清晰：退役证照片反光，请重新拍摄"}),
    ],
    APPROVED: [*TO_ORDER, PAID],
    # The ID number's owner won a 账号申诉 after this applicant reached 信息确认.
    FROZEN: [*TO_CONFIRMING, (FREEZE_FOR_APPEAL, STAFF_ROLE, "appeal")],
}
NEEDS_MATERIALS = {MATERIALS_PENDING, MATERIALS_REVIEW, MATERIALS_REJECTED}


def demo_clock(flow: FlowSpec, now: datetime) -> datetime:
    """Inside the registration window, so the window guard lets the demo through."""
    window = flow.windows.get(REGISTRATION)
    if window is None or window.opens <= now < window.closes - timedelta(days=3):
        return now
    return window.opens + timedelta(days=1)


def drive(
    eng: Engine,
    app_id: int,
    student: Student,
    account_id: int,
    route: list[tuple[str, str, Any]],
    staff_id: int,
    at: datetime,
) -> None:
    for step, (event, who, payload) in enumerate(route):
        app = db.session.get(Application, app_id)
        if payload == "basic_info":
            payload = basic_info(student, "NK01")
        elif payload == "payment":
            order = current_order(db.session, app.id)
            payload = {
                "order": order["number"],
                "amount_fen": order["amount_fen"],
                "trade_no": f"SBX{app.id:08d}",
                "channel": "alipay",
            }
        elif payload == "materials":
            documents = required_documents(FLOWS.by_version(db.session, app.flow_version_id), app.data or {})
            keys = [d.key for d in documents if not d.optional] or [""]
            payload = {"files": [demo_material(app, step * 10 + n, key) for n, key in enumerate(keys)]}
        elif payload == "identity":
            payload = demo_identity_images(app)
        elif payload == "appeal":
            moment = at + timedelta(minutes=7 * step)
            payload = {"case": demo_appeal("王真人", student.id_number, f"1390000{student.index:04d}", moment)}
        elif payload == "manual_request":
            payload = {**demo_identity_images(app), "note": "人脸比对多次未通过，申请人工认证"}
        actor = {
            STUDENT: Actor(f"account:{account_id}", "student"),
            SYSTEM: Actor.system("demo"),
            STAFF_ROLE: Actor(f"account:{staff_id}", "staff"),
        }[who]
        eng.fire(app_id, event, actor, payload, now=at + timedelta(minutes=7 * step))


DEMO_HOURS = "工作日 9:00-11:30，14:00-16:30"


def open_demo_slots(session: Any, point_ids: list[int], now: datetime) -> None:
    """现场确认 slots at every point for the next five days, mornings and afternoons."""
    today = as_utc(now).astimezone(BEIJING).date()
    for point_id in point_ids:
        point = session.get(ConfirmationPoint, point_id)
        point.office_hours = point.office_hours or DEMO_HOURS
        for offset in range(1, 6):
            for first, last in ((time(9), time(11, 30)), (time(14), time(16, 30))):
                onsite.add_slots(
                    session, Operator("demo"), now, point, day=today + timedelta(days=offset),
                    first=first, last=last, minutes=30, capacity=10,
                )  # fmt: skip
    session.commit()


def seed(app: Flask, per_state: int = 2) -> list[str]:
    with app.app_context():
        session = db.session
        v = vault()
        if session.scalars(select(Account.id).where(Account.role == "admin")).first() is not None:
            return ["demo data already present; nothing done"]
        # Fail before writing anything when no flow is published (all or nothing), or when
        # it lacks a state or event the routes below walk.
        missing = DEMO.missing(FLOWS.by_version(session, FLOWS.current(session, app.config["FLOW_NAME"]).id))
        if missing:
            raise ConfigurationError("the demo cannot seed this flow: " + "; ".join(m.message for m in missing))
        points = {}
        for code, name, address in CONFIRMATION_POINTS:
            point = session.scalars(select(ConfirmationPoint).where(ConfirmationPoint.code == code)).first()
            if point is None:
                point = ConfirmationPoint(code=code, name=name, address=address)
                session.add(point)
                session.flush()
            points[code] = point.id
        password_hash = hash_password(DEMO_PASSWORD)
        for role, name, seed17, mobile, point_code in STAFF:
            create_account(
                session, v, name=name, id_number=id_number(seed17),
                password_hash=password_hash, mobile=mobile, role=role,
                confirmation_point_id=points.get(point_code) if point_code else None,
            )  # fmt: skip
        session.commit()
        import_reference_data(session, v)
        eng = engine()
        open_demo_slots(session, list(points.values()), eng.clock())
        version = FLOWS.current(session, app.config["FLOW_NAME"])
        flow = FLOWS.by_version(session, version.id)
        at = demo_clock(flow, eng.clock())
        staff_id = session.scalars(select(Account.id).where(Account.role == "staff")).one()
        lines, index = [], 0
        for state, route in ROUTES.items():
            for _ in range(per_state):
                index += 1
                student = demo_student(index)
                if state in NEEDS_MATERIALS:
                    student = Student(**{**student.__dict__, "category": "退役士兵"})
                elif state == APPROVED:
                    student = Student(**{**student.__dict__, "category": "普通", "in_registry": True})
                photo = portrait_png(student.index) if student.in_registry else None
                account = add_demo_student(session, v, student, password_hash=password_hash, photo=photo)
                # The registry decides: a record imported from data/ means "found".
                found = registry_record(session, v, student) is not None
                student = Student(**{**student.__dict__, "in_registry": found})
                session.commit()
                application = start_application(session, account.id, app.config["FLOW_NAME"])
                route_here = route if student.in_registry else [r for r in route if r[0] != CONFIRM_XUEJI]
                drive(eng, application.id, student, account.id, route_here, staff_id, at + timedelta(hours=index))
                lines.append(f"{state:18} {student.name} {mask_id_number(student.id_number)}")
        lines.append(f"demo password for every account: {DEMO_PASSWORD}")
        return lines


group = AppGroup("demo", help="Demo data.")


@group.command("seed")
@click.option("--per-state", default=2, show_default=True, help="Applications per state.")
def demo_seed(per_state: int) -> None:
    """Demo accounts and applications in every state, each driven there through the engine."""
    summary = seed(current_app, per_state=per_state)
    for line in summary:
        click.echo(line)

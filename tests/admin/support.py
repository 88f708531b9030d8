"""Helpers of the admin tests: people with valid ID numbers, accounts of each role, clients."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskClient

from gzsb.accounts.service import create_account
from gzsb.admin.service import Operator
from gzsb.bootstrap import vault
from gzsb.cli.demo import DEMO_PASSWORD, id_number
from gzsb.extensions import db
from gzsb.models import Account
from tests.review_support import point_id
from tests.support import PASSWORD_HASH, log_in, log_in_student

_numbers = itertools.count(100)
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
TODAY = NOW.date()
BY = Operator("test:admin")
SECRET = re.compile(r'<p class="password"><code>([^<]+)</code>')


@dataclass(frozen=True)
class Person:
    id_number: str
    mobile: str
    name: str


def person(name: str = "张老师") -> Person:
    n = next(_numbers)
    return Person(id_number(f"12010419850101{n:03d}"), f"1380000{n:04d}", name)


def add_account(role: str, point: str | None = "NK01") -> tuple[Account, Person]:
    """An account of ``role`` with the demo password, already past its first log-in."""
    who = person()
    account = create_account(
        db.session,
        vault(),
        name=who.name,
        id_number=who.id_number,
        password_hash=PASSWORD_HASH,
        mobile=who.mobile,
        role=role,
        confirmation_point_id=point_id(point) if role == "staff" and point else None,
    )
    db.session.commit()
    return account, who


def client_of(app: Flask, who: Person, password: str = DEMO_PASSWORD) -> FlaskClient:
    client = app.test_client()
    log_in(client, who.id_number, password)
    return client


def one_time_password(html: str) -> str:
    match = SECRET.search(html)
    assert match, "no one-time password on the page"
    return match.group(1)


def non_admin_clients(app: Flask, student: object) -> dict[str, FlaskClient]:
    """Logged-in clients of everyone an admin page must refuse (and an anonymous one)."""
    _, staff_who = add_account("staff")
    _, auditor_who = add_account("auditor")
    student_client = app.test_client()
    log_in_student(student_client, student)
    return {
        "anonymous": app.test_client(),
        "student": student_client,
        "staff": client_of(app, staff_who),
        "auditor": client_of(app, auditor_who),
    }

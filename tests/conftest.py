"""Shared fixtures: an app on a fresh SQLite file, a controllable clock, students."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from gzsb.accounts import create_account
from gzsb.app import create_app
from gzsb.config import ROOT, TestConfig, test_database_url
from gzsb.demo import demo_student
from gzsb.extensions import db
from gzsb.models import ConfirmationPoint, RegistryRecord
from gzsb.runtime import engine, vault
from gzsb.store import publish, start_application
from gzsb.workflow.engine import Engine
from gzsb.workflow.loader import load_flow_file
from tests.support import Applicant

FLOW_FILE = ROOT / "flows" / "enrollment.yaml"
# Inside the shipped flow's registration window (2026-11-16 → 2027-01-12, Beijing time).
IN_WINDOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = IN_WINDOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def _make_app(uri: str, clock: Clock) -> Flask:
    config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": uri})
    app = create_app(config, clock=clock)
    with app.app_context():
        db.drop_all()
        db.create_all()
        publish(db.session, load_flow_file(FLOW_FILE))
        db.session.add(ConfirmationPoint(code="NK01", name="南开区招生考试中心"))
        db.session.add(ConfirmationPoint(code="HX01", name="河西区招生考试中心"))
        db.session.commit()
    return app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, clock: Clock) -> Iterator[Flask]:
    app = _make_app(f"sqlite:///{tmp_path / 'test.sqlite3'}", clock)
    with app.app_context():
        yield app
        db.session.remove()


@pytest.fixture
def pg_app(clock: Clock) -> Iterator[Flask]:
    url = test_database_url()
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL integration test skipped")
    app = _make_app(url, clock)
    with app.app_context():
        yield app
        db.session.remove()
        db.drop_all()


_counter = itertools.count(1)


@pytest.fixture
def make_applicant(app: Flask) -> Callable[..., Applicant]:
    return _applicant_factory()


def _applicant_factory() -> Callable[..., Applicant]:
    def make(*, in_registry: bool = True, category: str = "普通") -> Applicant:
        index = next(_counter)
        student = demo_student(index)
        account = create_account(
            db.session, vault(), name=student.name, id_number=student.id_number, password="Demo@2026gzsb",
            mobile=student.mobile,
        )  # fmt: skip
        if in_registry:
            db.session.add(
                RegistryRecord(
                    id_number_index=vault().index(student.id_number),
                    name=student.name,
                    school="天津职业大学",
                    major="计算机应用技术",
                    graduation_year=2027,
                )  # fmt: skip
            )
        db.session.commit()
        application = start_application(db.session, account.id, "tianjin-gzsb")
        applicant = Applicant(account.id, application.id, index)
        applicant.category = category  # type: ignore[attr-defined]
        return applicant

    return make


@pytest.fixture
def eng(app: Flask) -> Engine:
    return engine()

"""Shared fixtures: an app on a fresh SQLite file, a controllable clock, students."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask

from gzsb.app import create_app
from gzsb.bootstrap import engine
from gzsb.cli.demo import CATALOG_CSV
from gzsb.config import ROOT, TestConfig, test_database_url
from gzsb.enrollment.catalog import import_catalog
from gzsb.extensions import db
from gzsb.models import ConfirmationPoint
from gzsb.store import publish
from gzsb.workflow.engine import Engine
from gzsb.workflow.loader import load_flow_file
from tests.support import Applicant, new_applicant

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "empty_catalogue: the `app` fixture imports no 招生院校/专业 catalogue")


def _make_app(uri: str, clock: Clock, *, catalogue: bool = True) -> Flask:
    """A fresh database with the flow published, two confirmation points and (unless told
    otherwise) the shipped catalogue, so 志愿 can be checked strictly."""
    config = type("Cfg", (TestConfig,), {"SQLALCHEMY_DATABASE_URI": uri})
    app = create_app(config, clock=clock)
    with app.app_context():
        db.drop_all()
        db.create_all()
        publish(db.session, load_flow_file(FLOW_FILE))
        db.session.add(ConfirmationPoint(code="NK01", name="南开区招生考试中心"))
        db.session.add(ConfirmationPoint(code="HX01", name="河西区招生考试中心"))
        db.session.commit()
        if catalogue:
            import_catalog(db.session, CATALOG_CSV)
    return app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Flask]:
    catalogue = request.node.get_closest_marker("empty_catalogue") is None
    app = _make_app(f"sqlite:///{tmp_path / 'test.sqlite3'}", clock, catalogue=catalogue)
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
    return lambda **options: new_applicant(next(_counter), **options)


@pytest.fixture
def eng(app: Flask) -> Engine:
    return engine()

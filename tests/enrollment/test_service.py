"""The 流程页面's data: the application and the states its history entered in one query,
on SQLite and (with TEST_DATABASE_URL) on PostgreSQL."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import event

from gzsb.bootstrap import engine
from gzsb.enrollment.service import application_with_visits
from gzsb.extensions import db
from tests.drive import history
from tests.support import new_applicant, to_confirming


@pytest.fixture(params=["app", "pg_app"])
def any_app(request: pytest.FixtureRequest) -> Flask:
    return request.getfixturevalue(request.param)


def test_application_and_visited_states_in_one_round_trip(any_app: Flask) -> None:
    who = new_applicant(31)
    eng = engine()
    to_confirming(eng, who)
    db.session.commit()
    db.session.expire_all()
    seen: list[str] = []

    def note(*_args) -> None:  # type: ignore[no-untyped-def]
        seen.append("statement")

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        app, visited = application_with_visits(db.session, who.account_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert len(seen) == 1
    assert app is not None and app.id == who.application_id
    entered = {row.to_state for row in history(who.application_id)}
    assert len(entered) >= 3
    assert visited == entered | {app.state}


def test_an_account_without_application(any_app: Flask) -> None:
    assert application_with_visits(db.session, 987654) == (None, set())

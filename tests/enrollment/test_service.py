"""The 流程页面's data: the account, its application, the states its history entered and the
报名表's download time in one query, on SQLite and (with TEST_DATABASE_URL) on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import event, update

from gzsb.bootstrap import engine
from gzsb.enrollment.service import account_page
from gzsb.extensions import db
from gzsb.models import RegistrationForm
from tests.drive import history
from tests.review_support import make_staff
from tests.support import new_applicant, to_confirming


@pytest.fixture(params=["app", "pg_app"])
def any_app(request: pytest.FixtureRequest) -> Flask:
    return request.getfixturevalue(request.param)


def test_account_application_and_visited_states_in_one_round_trip(any_app: Flask) -> None:
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
        page = account_page(db.session, who.account_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert len(seen) == 1
    assert page is not None and page.account.id == who.account_id
    app = page.application
    assert app is not None and app.id == who.application_id
    entered = {row.to_state for row in history(who.application_id)}
    assert len(entered) >= 3
    assert page.visited == entered | {app.state}
    assert page.downloaded_at is None  # no 报名表 yet
    # A status poll or a POST asks for the application alone: no history scan.
    bare = account_page(db.session, who.account_id, journey=False)
    assert bare is not None and bare.application is app and not bare.journey
    assert bare.visited == {app.state}


def test_the_download_time_comes_with_the_page(any_app: Flask) -> None:
    who = new_applicant(32)
    at = datetime(2027, 1, 5, 9, 30, tzinfo=UTC)
    form = RegistrationForm(
        application_id=who.application_id, serial="2027NK010001", year=2027, point_code="NK01", number=1
    )
    db.session.add(form)
    db.session.flush()
    db.session.execute(
        update(RegistrationForm).where(RegistrationForm.application_id == who.application_id).values(downloaded_at=at)
    )
    db.session.commit()
    db.session.expire_all()
    page = account_page(db.session, who.account_id)
    assert page is not None and page.downloaded_at is not None
    assert page.downloaded_at.replace(tzinfo=UTC) == at


def test_an_account_without_application(any_app: Flask) -> None:
    assert account_page(db.session, 987654) is None
    staff = make_staff()
    db.session.commit()
    page = account_page(db.session, staff.id)
    assert page is not None and page.account.id == staff.id
    assert page.application is None and page.visited == frozenset() and page.downloaded_at is None

"""The window guard uses the applicant's group: their 确认点, else their ID number's district."""

from __future__ import annotations

import pytest

from gzsb.errors import GuardRefused
from gzsb.extensions import db
from gzsb.models import Application
from gzsb.store import publish
from gzsb.workflow.loader import load_flow
from tests.support import student_payload
from tests.workflow.test_window_groups import staggered


def publish_staggered(groups: str) -> None:
    publish(db.session, load_flow(staggered(groups), "staggered.yaml"))
    db.session.commit()


def to_preferences(eng, who, **overrides) -> None:  # type: ignore[no-untyped-def]
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who, **overrides))
    eng.fire(who.application_id, "check_xueji", who.actor, {})
    eng.fire(who.application_id, "confirm_xueji", who.actor, {"answer": "correct"})


def submit(eng, who):  # type: ignore[no-untyped-def]
    choices = [{"institution": "10060", "major": "080901"}]
    return eng.fire(who.application_id, "submit_preferences", who.actor, {"choices": choices})


def test_a_district_whose_window_closed_is_refused_and_others_go_on(app, make_applicant, eng) -> None:
    first = make_applicant()
    district = student_payload(first)["id_number"][:6]
    # The clock of the tests is 2026-12-01: this district closed the day before, the rest is open.
    publish_staggered(f'    by_district: {{"{district}": {{closes: "2026-11-30T17:00:00+08:00"}}}}\n')
    who = make_applicant()
    assert student_payload(who)["id_number"][:6] == district
    to_preferences(eng, who)
    stored = db.session.get(Application, who.application_id).data["basic_info"]
    assert stored["district"] == district and "id_number" not in stored  # the number itself stays sealed
    with pytest.raises(GuardRefused) as refused:
        submit(eng, who)
    assert refused.value.reasons == ["报名时间已截止（2026年11月30日 17:00）"]


def test_a_point_that_opens_later_holds_its_applicants_back(app, make_applicant, eng) -> None:
    publish_staggered('    by_point: {HX01: {opens: "2026-12-05T09:00:00+08:00"}}\n')
    at_hx, at_nk = make_applicant(), make_applicant()
    to_preferences(eng, at_hx, confirmation_point="HX01")
    to_preferences(eng, at_nk)
    with pytest.raises(GuardRefused) as refused:
        submit(eng, at_hx)
    assert refused.value.reasons == ["报名尚未开始，开始时间：2026年12月05日 09:00"]
    assert submit(eng, at_nk)

"""The parts of 账号申诉 that need no app: the promised date, retired indexes, the flow."""

from __future__ import annotations

from datetime import date

import pytest

from gzsb.appeals.names import FREEZE_FOR_APPEAL, FROZEN
from gzsb.appeals.service import retired_index, working_days_after
from gzsb.config import ROOT
from gzsb.workflow.loader import load_flow_file

pytestmark = pytest.mark.unit


def test_the_deadline_counts_working_days_only() -> None:
    friday = date(2026, 12, 4)
    assert working_days_after(friday, 1) == date(2026, 12, 7)  # Monday
    assert working_days_after(friday, 7) == date(2026, 12, 15)  # seven working days, two weekends
    assert working_days_after(date(2026, 12, 5), 1) == date(2026, 12, 7)  # submitted on a Saturday
    new_year = [date(2027, 1, 1)]
    assert working_days_after(date(2026, 12, 31), 1, new_year) == date(2027, 1, 4)


def test_a_retired_index_matches_no_typed_value_and_differs_per_case() -> None:
    first, second = retired_index("a" * 64, "SS1"), retired_index("a" * 64, "SS2")
    assert len(first) == 64 and first != second and "a" * 64 not in (first, second)


def test_every_state_of_the_shipped_flow_can_be_frozen() -> None:
    """A state added later without a freeze_for_appeal transition fails here: an approved
    appeal must be able to freeze the old application wherever it is."""
    flow = load_flow_file(ROOT / "flows" / "enrollment.yaml")
    assert flow.states[FROZEN].final and flow.events_from(FROZEN) == ()
    missing = [name for name in flow.states if name != FROZEN and not flow.branches(FREEZE_FOR_APPEAL, name)]
    assert missing == []
    for name in flow.states:
        for branch in flow.branches(FREEZE_FOR_APPEAL, name):
            assert branch.dest == FROZEN and set(branch.actors) == {"staff", "admin"}

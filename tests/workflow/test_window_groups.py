"""Staggered windows: per-确认点 and per-district overrides, loaded, resolved, validated, diffed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gzsb.bootstrap import registries
from gzsb.config import ROOT, TestConfig
from gzsb.errors import FlowError
from gzsb.workflow.diff import diff_flows
from gzsb.workflow.loader import load_flow
from gzsb.workflow.validate import check_flow

pytestmark = pytest.mark.unit

SHIPPED = (ROOT / "flows" / "enrollment.yaml").read_text(encoding="utf-8")
BASE = 'registration: {opens: "2026-11-16T09:00:00+08:00", closes: "2027-01-12T17:00:00+08:00"}'
PRODUCT = registries(TestConfig)


def staggered(groups: str) -> str:
    assert BASE in SHIPPED
    window = 'registration:\n    opens: "2026-11-16T09:00:00+08:00"\n    closes: "2027-01-12T17:00:00+08:00"\n' + groups
    return SHIPPED.replace(BASE, window)


GROUPS = (
    '    by_point:\n      HX01: {opens: "2026-11-18T09:00:00+08:00"}\n'
    "    by_district:\n"
    '      "1201": {opens: "2026-11-17T09:00:00+08:00"}\n'
    '      "120104": {opens: "2026-11-15T09:00:00+08:00", closes: "2027-01-10T17:00:00+08:00"}\n'
)


def utc(day: int, hour: int = 1) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=UTC)


def test_groups_resolve_point_first_then_the_longest_district_prefix() -> None:
    window = load_flow(staggered(GROUPS), "staggered.yaml").windows["registration"]
    assert window.for_group().opens == utc(16)
    assert window.for_group(point="NK01").opens == utc(16)  # no override: the window's own
    assert window.for_group(point="HX01", district="120104").opens == utc(18)  # the point wins
    assert window.for_group(district="120104").opens == utc(15)
    assert window.for_group(district="120104").closes == datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
    assert window.for_group(district="120101").opens == utc(17)  # 1201…: the city's override
    assert window.for_group(district="120101").closes == window.closes  # left out: inherited
    assert window.for_group(district="130102").opens == utc(16)
    assert window.earliest_opening == utc(15)
    assert window.for_group(district="120104").phase(utc(15, 2)) == "open"
    assert window.phase(utc(15, 2)) == "upcoming"


def test_the_shipped_flow_validates_with_groups_and_known_points() -> None:
    flow = check_flow(staggered(GROUPS), "staggered.yaml", PRODUCT, points={"NK01", "HX01"})
    assert set(flow.windows["registration"].by_point) == {"HX01"}


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (
            '    by_point: {XX09: {opens: "2026-11-18T09:00:00+08:00"}}\n',
            "staggered.yaml: windows.registration.by_point.XX09: unknown 确认点 'XX09'; known: HX01, NK01",
        ),
        (
            '    by_district: {"1201": {opens: "2027-02-01T09:00:00+08:00"}}\n',
            "staggered.yaml: windows.registration.by_district.1201: closes (2027-01-12T17:00:00+08:00) "
            "must be after opens (2027-02-01T09:00:00+08:00)",
        ),
        (
            '    by_district: {"12345": {opens: "2026-11-18T09:00:00+08:00"}}\n',
            "staggered.yaml: windows.registration.by_district.12345 (the key): '12345' is not a district code: "
            "2, 4 or 6 digits of the ID number",
        ),
        (
            '    by_point: {NK01: {open: "2026-11-18T09:00:00+08:00"}}\n',
            "staggered.yaml: windows.registration.by_point.NK01: unknown key 'open'; known: closes, opens",
        ),
        (
            "    by_point: {NK01: {}}\n",
            "staggered.yaml: windows.registration.by_point.NK01: give opens, closes or both",
        ),
        (
            '    by_points: {NK01: {opens: "2026-11-18T09:00:00+08:00"}}\n',
            "staggered.yaml: windows.registration: unknown key 'by_points'; "
            "known: by_district, by_point, closes, opens",
        ),
    ],
)
def test_bad_groups_say_where_and_what_would_be_valid(groups: str, expected: str) -> None:
    with pytest.raises(FlowError) as refused:
        check_flow(staggered(groups), "staggered.yaml", PRODUCT, points={"NK01", "HX01"})
    assert any(line.startswith(expected) for line in refused.value.problems), refused.value.problems


def test_moving_one_groups_opening_shows_in_the_diff() -> None:
    old = load_flow(staggered(GROUPS), "old.yaml")
    new = load_flow(staggered(GROUPS.replace("2026-11-18T09", "2026-11-19T09")), "new.yaml")
    paths = [change.to_text() for change in diff_flows(old, new).changes]
    assert paths == ["windows.registration.by_point.HX01.opens: 2026-11-18T09:00:00+08:00 → 2026-11-19T09:00:00+08:00"]

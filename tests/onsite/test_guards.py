"""Who must book 现场确认, until when a booking changes, and the materials section's
categories: pure guards on the shipped flow (no app, no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest

from gzsb.config import ROOT
from gzsb.enrollment.guards import REVIEWED_CATEGORIES, materials_required
from gzsb.enrollment.steps import CATEGORIES
from gzsb.onsite.guards import onsite_booked, onsite_changeable, onsite_required
from gzsb.workflow.engine import Actor, GuardContext
from gzsb.workflow.loader import load_flow_file

pytestmark = pytest.mark.unit

FLOW = load_flow_file(ROOT / "flows" / "enrollment.yaml")
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def ctx(state: str = "identity_verified", flow: Any = FLOW, now: datetime = NOW, **data: Any) -> GuardContext:
    return GuardContext("uid", state, data, flow, Actor("account:1", "student"), now)


def test_manual_identity_and_the_flows_categories_need_onsite() -> None:
    assert onsite_required(ctx("manual_identity"), None) is None
    assert onsite_required(ctx(identity={"manual": {"note": "无身份证"}}), None) is None  # asked for it earlier
    assert onsite_required(ctx(basic_info={"category": "退役士兵"}), None) is None
    assert onsite_required(ctx(basic_info={"category": "普通"}), None) == "您无需到确认点现场确认"
    narrower = replace(FLOW, onsite=replace(FLOW.onsite, categories=("残疾人",)))
    assert onsite_required(ctx(flow=narrower, basic_info={"category": "退役士兵"}), None) == "您无需到确认点现场确认"


def test_a_booking_changes_until_two_hours_before_its_slot() -> None:
    starts = NOW + timedelta(days=1)
    booked = {"onsite": {"slot": 3, "starts_at": starts.isoformat()}}
    assert onsite_booked(ctx(**booked), None) is None
    assert onsite_booked(ctx(), None) == "您还没有预约现场确认时段"
    assert onsite_changeable(ctx(), None) is None  # nothing booked: a first booking
    assert onsite_changeable(ctx(now=starts - timedelta(hours=2, minutes=1), **booked), None) is None
    late = onsite_changeable(ctx(now=starts - timedelta(hours=2), **booked), None)
    assert late == "预约时段（2026年12月02日 10:00）开始前2小时内不能修改或取消"


def test_a_category_named_in_materials_must_upload() -> None:
    extra = replace(
        FLOW,
        materials=replace(
            FLOW.materials,
            categories=MappingProxyType({**FLOW.materials.categories, "烈士子女": ("other_proof",)}),
        ),
    )
    found = {"xueji": {"status": "found", "answer": "correct"}}
    assert materials_required(ctx(flow=extra, basic_info={"category": "烈士子女"}, **found), None) is None
    assert materials_required(ctx(basic_info={"category": "烈士子女"}, **found), None) == "无需上传审核材料"
    documents = [d.label for d in FLOW.materials.documents_for("退役士兵", "not_found")]
    assert documents == ["退役证", "学历认证报告", "毕业证书"]
    assert FLOW.materials.documents_for("普通", "found", "correct") == ()


def test_the_shipped_flow_names_documents_for_every_special_category() -> None:
    special = set(CATEGORIES) - {"普通"}
    assert set(FLOW.materials.categories) == special == set(REVIEWED_CATEGORIES)
    assert set(FLOW.onsite.categories) <= set(CATEGORIES)

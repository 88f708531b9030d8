"""Classifying in-flight applications against a candidate flow (no database needed)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from gzsb.workflow.impact import (
    BLOCKED,
    CAN_MIGRATE,
    CLASSES,
    STRANDED,
    UNAFFECTED,
    UNBLOCKED,
    Classifier,
    Impact,
    blocked,
    classify,
    summarise,
)
from tests.conftest import IN_WINDOW
from tests.workflow.test_migrate import AFTER_OLD_CLOSE, EXTENDED, FLOW, REMOVED_STATE, edited

CLOSED = "报名时间已截止（2027年01月12日 17:00）"
CHECKED = {"xueji": {"status": "found", "answer": "correct"}}
UNCHECKED: dict[str, Any] = {}
CONFIRM_INFO = "    label: 完成信息采集去身份认证\n    step: confirm_info\n"
# 信息确认 also needs the 学籍 check: a guard that reads the application's data.
GUARDED_CONFIRM = edited((CONFIRM_INFO, CONFIRM_INFO + "    guards: [xueji_checked]\n"), source="guarded.yaml")


def klass(state: str, data: Any = UNCHECKED, *, current: Any = FLOW, candidate: Any = EXTENDED, now: Any = None) -> Any:
    return classify("u1", state, data, current=current, candidate=candidate, now=now or AFTER_OLD_CLOSE)


def test_deadline_extension_unblocks_applicants_whose_window_closed() -> None:
    for state in ("started", "pledged", "preferences"):
        assert blocked(FLOW, state, CHECKED, now=AFTER_OLD_CLOSE) == (CLOSED,)
        assert blocked(EXTENDED, state, CHECKED, now=AFTER_OLD_CLOSE) == ()
        assert klass(state, CHECKED) == Impact("u1", state, UNBLOCKED, (CLOSED,))
    # 信息确认 could go on anyway (only 返回修改 needs the window): the edit changes it, no more.
    assert klass("confirming") == Impact("u1", "confirming", CAN_MIGRATE, ("window registration changed",))
    # 上传认证 ends with the window too; 申请人工认证 stays open, so nobody there is blocked.
    assert klass("identity_pending") == Impact("u1", "identity_pending", CAN_MIGRATE, ("window registration changed",))
    for state in ("payment_pending", "manual_identity", "approved"):
        assert klass(state).klass == UNAFFECTED
    # Inside the old window nobody was blocked: the extension is just a change.
    assert klass("pledged", now=IN_WINDOW).klass == CAN_MIGRATE
    # The other way round (moving the deadline back before now) blocks them.
    assert klass("pledged", current=EXTENDED, candidate=FLOW) == Impact("u1", "pledged", BLOCKED, (CLOSED,))


def test_a_removed_state_strands_its_applicants() -> None:
    stranded = klass("materials_rejected", candidate=REMOVED_STATE)
    assert stranded.klass == STRANDED and stranded.reasons == (
        "state 'materials_rejected' is not in the candidate flow",
    )
    review = klass("materials_review", candidate=REMOVED_STATE)
    assert review.klass == CAN_MIGRATE and review.reasons == ("transitions changed: reject_materials",)
    assert klass("materials_pending", candidate=REMOVED_STATE).klass == UNAFFECTED
    # A state nothing leaves any more (the validator would refuse such a flow; impact still says why).
    dead_end = edited(
        (
            "    from: payment_pending\n    to: identity_verified\n",
            "    from: payment_pending\n    to: payment_pending\n",
        ),
        (
            "    from: payment_pending\n    to: materials_pending\n",
            "    from: payment_pending\n    to: payment_pending\n",
        ),
        ("    from: payment_pending\n    to: approved\n", "    from: payment_pending\n    to: payment_pending\n"),
        (
            "  - {event: freeze_for_appeal, from: payment_pending, to: frozen, actors: [staff, admin], "
            "label: 账号申诉通过, step: appeal_freeze}\n",
            "",
        ),
        validate=False,
    )
    assert klass("payment_pending", candidate=dead_end).reasons == (
        "no event leaves 'payment_pending' in the candidate flow "
        "(gone: freeze_for_appeal, payment_expired, payment_succeeded)",
    )


def test_an_unchanged_flow_affects_nobody() -> None:
    cosmetic = edited(("# Each applicant's application", "# Every applicant's application"))
    assert cosmetic.sha256 != FLOW.sha256
    for candidate in (FLOW, cosmetic):
        for state in FLOW.states:
            for data in (UNCHECKED, CHECKED):
                for now in (IN_WINDOW, AFTER_OLD_CLOSE):
                    assert klass(state, data, candidate=candidate, now=now).klass == UNAFFECTED, (state, now)


def test_guards_that_read_the_data_are_evaluated_per_application() -> None:
    # After the close, 信息确认's only way on is confirm_info, which now needs the 学籍 check.
    assert klass("confirming", UNCHECKED, candidate=GUARDED_CONFIRM) == Impact(
        "u1", "confirming", BLOCKED, (CLOSED, "请先点击【验证学籍/学历】")
    )
    half = {"xueji": {"status": "found"}}
    assert klass("confirming", half, candidate=GUARDED_CONFIRM).reasons == (CLOSED, "请核对学籍/学历信息并确认")
    assert klass("confirming", CHECKED, candidate=GUARDED_CONFIRM) == Impact(
        "u1", "confirming", CAN_MIGRATE, ("transitions changed: confirm_info",)
    )
    # In 填写志愿 a missing 学籍 check does not block: the applicant can still do it there.
    assert blocked(FLOW, "preferences", UNCHECKED, now=IN_WINDOW) == ()
    # A state waiting for the system or staff is judged by their transitions.
    assert blocked(FLOW, "face_checking", UNCHECKED, now=AFTER_OLD_CLOSE) == ()
    assert blocked(FLOW, "manual_identity", UNCHECKED, now=AFTER_OLD_CLOSE) == ()


def test_summary_counts_exactly_and_lists_up_to_a_limit() -> None:
    impacts = [Impact(f"u{i}", "pledged" if i % 3 else "started", UNBLOCKED, (CLOSED,)) for i in range(10)]
    impacts += [Impact("s1", "materials_rejected", STRANDED, ("gone",))]
    seen: list[int] = []
    report = summarise(iter(impacts), limit=2, progress=seen.append, every=5)
    assert report.total == 11 and seen == [5, 10]
    assert dict(report.counts) == {UNAFFECTED: 0, CAN_MIGRATE: 0, UNBLOCKED: 10, BLOCKED: 0, STRANDED: 1}
    assert dict(report.by_state) == {
        (UNBLOCKED, "pledged"): 6,
        (UNBLOCKED, "started"): 4,
        (STRANDED, "materials_rejected"): 1,
    }
    assert [i.uid for i in report.items[UNBLOCKED]] == ["u0", "u1"] and report.truncated(UNBLOCKED)
    assert not report.truncated(STRANDED)
    data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    assert data["counts"][UNBLOCKED] == 10 and data["items"][STRANDED][0]["uid"] == "s1"
    assert "unblocked: 10 (pledged 6, started 4)" in report.to_text()


def test_classifies_100000_applications(capsys: pytest.CaptureFixture[str]) -> None:
    """Rate only (benchmarks are separate); GUARDED_CONFIRM makes 信息确认 depend on the data."""
    datas = [UNCHECKED, CHECKED, {"xueji": {"status": "found"}}, {"counters": {"face": 3}, **CHECKED}]
    states = list(FLOW.states)
    # Every (state, data) pair occurs, whatever the two counts (a common divisor would skip pairs).
    inputs = [(f"u{i}", states[i % len(states)], datas[i // len(states) % len(datas)]) for i in range(100_000)]
    classifier = Classifier(FLOW, GUARDED_CONFIRM, AFTER_OLD_CLOSE)
    started = time.perf_counter()
    report = summarise((classifier.classify(*x) for x in inputs), limit=100)
    elapsed = time.perf_counter() - started
    assert report.total == 100_000 and sum(report.counts.values()) == 100_000
    assert set(report.counts) == set(CLASSES) and report.counts[BLOCKED] > 0
    with capsys.disabled():
        print(f"\nimpact: classified 100,000 applications in {elapsed:.2f} s ({100_000 / elapsed:,.0f}/s)")

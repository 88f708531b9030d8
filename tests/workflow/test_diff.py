"""The structural diff of two flow versions and its two renderings."""

from __future__ import annotations

import json

from gzsb.workflow.diff import ADDED, CHANGED, REMOVED, diff_flows
from tests.workflow.test_migrate import EXTEND, EXTENDED, FLOW, REMOVED_STATE, edited

UPLOAD_GUARDS = (
    "    guards: [{window_open: registration}, face_consent_given, {attempts_left: {counter: face, max: 3}}]\n"
)
UPLOAD = "transitions[upload_identity: identity_pending → face_checking]"


def test_identical_flows_have_an_empty_diff() -> None:
    diff = diff_flows(FLOW, FLOW)
    assert diff.empty and not diff and diff.changes == () and diff.yaml_diff == ()
    assert diff.to_text().endswith("no changes")
    assert json.loads(json.dumps(diff.to_dict()))["changes"] == []


def test_a_moved_deadline_is_one_change() -> None:
    diff = diff_flows(FLOW, EXTENDED)
    assert [c.path for c in diff.changes] == ["windows.registration.closes"]
    assert diff.keys("windows", CHANGED) == ("registration",)
    line = "windows.registration.closes: 2027-01-12T17:00:00+08:00 → 2027-03-31T17:00:00+08:00"
    assert line in diff.to_text().splitlines()
    minus = [x for x in diff.yaml_diff if x.startswith("-  registration:")]
    plus = [x for x in diff.yaml_diff if x.startswith("+  registration:")]
    assert len(minus) == len(plus) == 1 and "2027-03-31" in plus[0]
    assert diff.to_text(yaml=False).splitlines()[2:] == [line]
    data = json.loads(json.dumps(diff.to_dict(), ensure_ascii=False))
    assert data["sections"]["windows"] == {"added": [], "removed": [], "changed": ["registration"]}
    assert data["changes"][0]["old"] == "2027-01-12T17:00:00+08:00"
    assert data["new"]["sha256"] == EXTENDED.sha256 and data["yaml_diff"]


def test_a_removed_state_and_its_transitions() -> None:
    diff = diff_flows(FLOW, REMOVED_STATE)
    assert diff.keys("states", REMOVED) == ("materials_rejected",)
    assert diff.keys("states", ADDED) == () and diff.keys("states", CHANGED) == ()
    assert set(diff.keys("transitions", REMOVED)) == {
        "purge_id_card: materials_rejected → materials_rejected",
        "reject_materials: materials_review → materials_rejected",
        "submit_materials: materials_rejected → materials_review",
        "resolve_xueji_correction: materials_rejected → materials_rejected",
        "freeze_for_appeal: materials_rejected → frozen",
        "book_onsite: materials_rejected → materials_rejected",
        "cancel_onsite: materials_rejected → materials_rejected",
    }
    assert diff.keys("transitions", ADDED) == ("reject_materials: materials_review → materials_pending",)
    text = diff.to_text(yaml=False).splitlines()
    assert (
        "states.materials_rejected: removed {label: 材料审核未通过, page: materials, stage: materials, final: false,"
        " status: 材料审核未通过，请按原因修改后重新提交, button: 修改材料}" in text
    )
    assert not any(line.startswith("@@") for line in text)


def test_a_changed_guard_argument() -> None:
    other = edited((UPLOAD_GUARDS, UPLOAD_GUARDS.replace("max: 3", "max: 5")))
    diff = diff_flows(FLOW, other)
    (change,) = diff.changes
    assert (change.path, change.kind, change.attr) == (f"{UPLOAD}.guards", CHANGED, "guards")
    window = "window_open(registration)"
    assert change.old == [window, "face_consent_given", 'attempts_left({"counter": "face", "max": 3})']
    assert change.new == [window, "face_consent_given", 'attempts_left({"counter": "face", "max": 5})']
    assert (
        f'{UPLOAD}.guards: [{window}, face_consent_given, attempts_left({{"counter": "face", "max": 3}})] → '
        f'[{window}, face_consent_given, attempts_left({{"counter": "face", "max": 5}})]'
    ) in diff.to_text()


def test_branch_order_actors_and_the_other_sections() -> None:
    mismatch_first = (
        "  - event: face_mismatch          # first branch whose guards pass wins\n"
        "    from: face_checking\n    to: identity_pending\n    actors: [system]\n    step: face_result\n"
        "    guards: [{attempts_left: {counter: face, max: 3}}]\n"
    )
    mismatch_second = (
        "  - event: face_mismatch\n    from: face_checking\n    to: manual_identity\n    actors: [system]\n"
        "    step: face_result\n"
    )
    other = edited(
        (mismatch_first + mismatch_second, mismatch_second + mismatch_first),
        ("    to: identity_verified\n    actors: [staff]\n", "    to: identity_verified\n    actors: [staff, admin]\n"),
        EXTEND,
        ("fee_yuan: 160", "fee_yuan: 200"),
        ("    after: 24h\n", "    after: 48h\n"),
        ("  approved: registration_approved\n", ""),
        ("button: 去支付}", "button: 立即支付}"),
        ("title: 天津市高职升本网上报名\n", "title: 天津市高职升本网上报名（补报名）\n"),
        validate=False,  # the swapped branches would be refused: the unguarded one always wins
    )
    lines = diff_flows(FLOW, other).to_text(yaml=False).splitlines()
    for expected in (
        "title: 天津市高职升本网上报名 → 天津市高职升本网上报名（补报名）",
        "settings.fee_yuan: 160 → 200",
        "windows.registration.closes: 2027-01-12T17:00:00+08:00 → 2027-03-31T17:00:00+08:00",
        "stages.payment.button: 去支付 → 立即支付",
        "transitions[face_mismatch: face_checking → identity_pending].branch: 1 of 2 → 2 of 2",
        "transitions[face_mismatch: face_checking → manual_identity].branch: 2 of 2 → 1 of 2",
        "transitions[approve_identity: manual_identity → identity_verified].actors: [staff] → [staff, admin]",
        "timers[payment_pending: payment_expired].after: 24h → 48h",
        "notify.approved: removed registration_approved",
    ):
        assert expected in lines, (expected, lines)
    assert len(lines) == 2 + 9, lines


def test_materials_and_onsite_changes_are_named() -> None:
    other = edited(
        ("    退役士兵: [discharge_certificate]\n", "    退役士兵: [discharge_certificate, diploma]\n"),
        ("  change_until: 2h\n", "  change_until: 24h\n"),
        ("{label: 退役证, hint:", "{label: 退役军人证, hint:"),
    )
    lines = diff_flows(FLOW, other).to_text(yaml=False).splitlines()
    changed = [line for line in lines if line.startswith(("materials", "onsite"))]
    assert any(line.startswith("materials.categories.退役士兵: ") and "diploma" in line for line in changed), lines
    assert any("materials.documents.discharge_certificate" in line and "退役军人证" in line for line in changed)
    assert any(line.startswith("onsite.change_until: 2h → 24h") for line in changed), changed

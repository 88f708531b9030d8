"""gzsb.admin.flows: live versions and rollback, impact, migration, two-person publish."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select

from gzsb.admin import flows
from gzsb.audit.service import verify_all
from gzsb.config import ROOT
from gzsb.errors import FlowError, Forbidden, GuardRefused, InvalidInput, MigrationRefused
from gzsb.extensions import db
from gzsb.models import AdminAction, Application, FlowProposal, FlowPublication, HistoryEvent
from gzsb.store import FLOWS, LIVE_AGAIN, live_version
from gzsb.workflow.engine import Engine
from gzsb.workflow.spec import FlowSpec
from tests.admin.support import add_account
from tests.conftest import Clock
from tests.drive import application
from tests.support import Applicant, student_payload, to_confirming

FLOW_TEXT = (ROOT / "flows" / "enrollment.yaml").read_text(encoding="utf-8")
OLD_CLOSE, NEW_CLOSE = "2027-01-12T17:00:00+08:00", "2027-03-31T17:00:00+08:00"
AFTER_OLD_CLOSE = datetime(2027, 2, 1, 2, 0, tzinfo=UTC)  # 10:00 in Beijing, between the two closes
NAME = "tianjin-gzsb"

# The shipped flow without 信息确认 (`confirming`): no area needs that state, so the product's
# validator accepts it; applicants in it have nowhere to stay.
WITHOUT_CONFIRMING = (
    (
        "  confirming:         {label: 信息确认, page: confirm, stage: confirmation, status: 请核对已填写的报名信息}\n",
        "",
    ),
    ("  - {key: confirmation, label: 信息确认, button: 去确认}\n", ""),
    ("    from: preferences\n    to: confirming\n", "    from: preferences\n    to: identity_pending\n"),
    ("  - event: back_to_edit\n    from: confirming\n", "  - event: back_to_edit\n    from: identity_pending\n"),
    (
        "  - event: confirm_info\n    from: confirming\n    to: identity_pending\n",
        "  - event: confirm_info\n    from: identity_pending\n    to: identity_pending\n",
    ),
    (
        "  - {event: resolve_xueji_correction, from: confirming, to: confirming, actors: [staff], "
        "label: 处理学籍更正申请, step: xueji_correction}\n",
        "",
    ),
    (
        "  - {event: freeze_for_appeal, from: confirming, to: frozen, actors: [staff, admin], "
        "label: 账号申诉通过, step: appeal_freeze}\n",
        "",
    ),
)


def edited_text(*edits: tuple[str, str]) -> str:
    text = FLOW_TEXT
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


EXTENDED_TEXT = edited_text((OLD_CLOSE, NEW_CLOSE))
NO_CONFIRMING_TEXT = edited_text(*WITHOUT_CONFIRMING)


def candidate(text: str, source: str = "edited.yaml") -> FlowSpec:
    return flows.validate(text, source)


def admins() -> tuple[str, str]:
    first, _ = add_account("admin")
    second, _ = add_account("admin")
    return f"account:{first.id}", f"account:{second.id}"


def pledged(eng: Engine, make_applicant: Callable[..., Applicant]) -> Applicant:
    who = make_applicant()
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    return who


def actions() -> list[str]:
    return list(db.session.scalars(select(AdminAction.action).order_by(AdminAction.id)))


def events(app_id: int) -> int:
    return db.session.scalar(select(func.count()).where(HistoryEvent.application_id == app_id)) or 0


def test_deadline_extension_proposed_approved_migrated_and_fired_again(
    app: Flask, make_applicant: Callable[..., Applicant], eng: Engine, clock: Clock
) -> None:
    proposer, approver = admins()
    waiting = [pledged(eng, make_applicant) for _ in range(2)]
    confirming = make_applicant()
    to_confirming(eng, confirming)
    fresh = make_applicant()  # still at the 承诺书
    clock.now = AFTER_OLD_CLOSE
    with pytest.raises(GuardRefused):
        eng.fire(waiting[0].application_id, "submit_basic_info", waiting[0].actor, student_payload(waiting[0]))

    report = flows.impact(db.session, candidate(EXTENDED_TEXT), now=clock())
    assert report.total == 4
    assert report.counts["unblocked"] == 3 and report.counts["can_migrate"] == 1, report.to_text()
    assert report.by_state[("unblocked", "pledged")] == 2 and report.by_state[("unblocked", "started")] == 1
    listed = {i.uid: i for i in report.items["unblocked"]}
    assert application(waiting[0].application_id).uid in listed
    assert any("报名时间已截止" in r for r in listed[application(fresh.application_id).uid].reasons)

    proposal = flows.propose(db.session, EXTENDED_TEXT, by=proposer, now=clock(), note="延长报名时间", migrate=True)
    assert proposal.status == "proposed" and proposal.impact["counts"]["unblocked"] == 3
    assert "registration" in proposal.diff["sections"]["windows"]["changed"]
    with pytest.raises(Forbidden, match="self-approval"):
        flows.approve(db.session, eng, proposal.id, by=proposer, now=clock())
    assert live_version(db.session, NAME).id == 1  # nothing published by the refused approval

    done = flows.approve(db.session, eng, proposal.id, by=approver, now=clock())
    version2 = done.publication.version.id
    assert done.publication.created and live_version(db.session, NAME).id == version2 == 2
    assert done.migration is not None and done.migration.counts["moved"] == 4 and done.migration.ok
    db.session.expire_all()
    assert db.session.get(FlowProposal, proposal.id).status == "published"
    pub = db.session.scalars(select(FlowPublication).order_by(FlowPublication.id.desc())).first()
    assert (pub.version_id, pub.by, pub.approved_by, pub.proposal_id) == (version2, proposer, approver, proposal.id)
    assert actions()[-4:] == ["propose_flow", "approve_flow", "publish_flow", "migrate_flow"]

    for who in waiting:
        assert application(who.application_id).flow_version_id == version2
        fired = eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
        assert fired.to_state == "preferences"
    assert eng.fire(fresh.application_id, "accept_pledge", fresh.actor, {"agree": True}).to_state == "pledged"
    verdicts = list(verify_all(db.session))
    assert len(verdicts) == 4 and all(v.ok for v in verdicts), [v.describe() for v in verdicts]
    # Nothing left to move: a second run is a no-op.
    again = flows.migrate(db.session, eng, version2, by=approver, approved_by=None, now=clock())
    assert again.total == 0


def test_a_removed_state_is_stranded_refused_without_a_mapping_and_moved_with_one(
    app: Flask, make_applicant: Callable[..., Applicant], eng: Engine, clock: Clock
) -> None:
    proposer, approver = admins()
    stuck = make_applicant()
    to_confirming(eng, stuck)
    other = pledged(eng, make_applicant)
    target = candidate(NO_CONFIRMING_TEXT, "no-confirming.yaml")

    report = flows.impact(db.session, target, now=clock())
    assert report.counts["stranded"] == 1 and report.by_state[("stranded", "confirming")] == 1
    assert report.items["stranded"][0].uid == application(stuck.application_id).uid
    assert "not in the candidate" in report.items["stranded"][0].reasons[0]

    proposal = flows.propose(db.session, NO_CONFIRMING_TEXT, by=proposer, now=clock())
    version2 = flows.approve(db.session, eng, proposal.id, by=approver, now=clock()).publication.version.id
    before = events(stuck.application_id), events(other.application_id)

    dry = flows.migrate(db.session, eng, version2, by=approver, approved_by=proposer, now=clock(), dry_run=True)
    assert (dry.counts["would_move"], dry.counts["refused"]) == (1, 1)
    assert (events(stuck.application_id), events(other.application_id)) == before  # the dry run touched nothing

    seen: list[flows.MigrationItem] = []
    first = flows.migrate(
        db.session, eng, version2, by=approver, approved_by=proposer, now=clock(), on_item=seen.append
    )
    assert (first.counts["moved"], first.counts["refused"]) == (1, 1) and not first.ok
    refusal = next(i for i in first.items if i.outcome == "refused")
    uid = application(stuck.application_id).uid
    assert refusal.uid == uid and refusal.state == "confirming"
    assert uid in refusal.reason and "identity_pending" in refusal.reason  # names the valid targets
    assert [i.outcome for i in seen] == ["refused", "moved"]
    db.session.expire_all()
    assert (application(stuck.application_id).flow_version_id, application(stuck.application_id).state) == (
        1,
        "confirming",
    )
    assert events(stuck.application_id) == before[0]

    with pytest.raises(MigrationRefused, match="nowhere"):  # a typo refuses the whole batch
        flows.migrate(db.session, eng, version2, by=approver, approved_by=proposer, now=clock(),
                      mapping={"confirming": "nowhere"})  # fmt: skip
    moved = flows.migrate(
        db.session, eng, version2, by=approver, approved_by=proposer, now=clock(),
        mapping={"confirming": "preferences"}, only_state="confirming",
    )  # fmt: skip
    assert moved.counts["moved"] == 1 and moved.ok
    db.session.expire_all()
    assert (application(stuck.application_id).flow_version_id, application(stuck.application_id).state) == (
        version2,
        "preferences",
    )
    assert all(v.ok for v in verify_all(db.session))


def test_two_person_publish_refusals(app: Flask, eng: Engine, clock: Clock) -> None:
    proposer, approver = admins()
    auditor, _ = add_account("auditor")
    with pytest.raises(FlowError):
        flows.propose(db.session, EXTENDED_TEXT.replace("window_open", "window_opn", 1), by=proposer, now=clock())
    with pytest.raises(Forbidden):  # an account that is not an admin proposes nothing
        flows.propose(db.session, EXTENDED_TEXT, by=f"account:{auditor.id}", now=clock())
    with pytest.raises(InvalidInput):
        flows.propose(db.session, EXTENDED_TEXT, by=proposer, now=clock(), migrate=True, mapping={"a": "nowhere"})
    assert db.session.scalar(select(func.count()).select_from(FlowProposal)) == 0

    proposal = flows.propose(db.session, EXTENDED_TEXT, by=proposer, now=clock())
    with pytest.raises(Forbidden, match="self-approval"):
        flows.approve(db.session, eng, proposal.id, by=proposer, now=clock())
    with pytest.raises(Forbidden):
        flows.approve(db.session, eng, proposal.id, by=f"account:{auditor.id}", now=clock())
    second, _ = add_account("admin")
    second.disabled_at = clock()
    db.session.commit()
    with pytest.raises(Forbidden):
        flows.approve(db.session, eng, proposal.id, by=f"account:{second.id}", now=clock())
    with pytest.raises(Forbidden, match="self-approval"):
        flows.reject(db.session, proposal.id, by=proposer, now=clock(), reason="不行")
    rejected = flows.reject(db.session, proposal.id, by=approver, now=clock(), reason="日期有误")
    assert (rejected.status, rejected.decided_by, rejected.reason) == ("rejected", approver, "日期有误")
    with pytest.raises(Exception, match="already rejected"):
        flows.approve(db.session, eng, proposal.id, by=approver, now=clock())
    assert live_version(db.session, NAME).id == 1
    assert "reject_flow" in actions()


def test_rollback_by_publishing_an_earlier_version(
    app: Flask, make_applicant: Callable[..., Applicant], clock: Clock
) -> None:
    shipped = candidate(FLOW_TEXT, "enrollment.yaml")
    extended = candidate(EXTENDED_TEXT)
    assert flows.publish_direct(db.session, shipped, by="cli:root", now=clock()).outcome == "already_live"
    with pytest.raises(Forbidden, match="second admin"):  # a new version needs a proposal
        flows.publish_direct(db.session, extended, by="cli:root", now=clock())
    assert flows.publish(db.session, extended, by="cli:a", approved_by="cli:b", now=clock()).version.id == 2
    assert application(make_applicant().application_id).flow_version_id == 2

    back = flows.publish_direct(db.session, shipped, by="cli:root", now=clock())
    assert (back.outcome, back.version.id, back.previous_id) == (LIVE_AGAIN, 1, 2)
    assert "version 1 is live again" in back.describe()
    assert FLOWS.current(db.session, NAME).id == 1
    assert application(make_applicant().application_id).flow_version_id == 1
    rows = {r.id: r for r in flows.versions(db.session, NAME)}
    assert rows[1].live and not rows[2].live
    assert (rows[1].applications, rows[2].applications) == (1, 1)
    assert rows[2].approved_by == "cli:b" and rows[1].published_by == ""
    assert rows[1].states == {"started": 1} and rows[1].in_flight == 1


def test_versions_count_applications_per_version_and_state(
    app: Flask, make_applicant: Callable[..., Applicant], eng: Engine, clock: Clock
) -> None:
    for _ in range(3):
        make_applicant()
    pledged(eng, make_applicant)
    flows.publish(db.session, candidate(EXTENDED_TEXT), by="cli:a", approved_by="cli:b", now=clock())
    make_applicant()
    counts = flows.state_counts(db.session, NAME)
    assert counts == {1: {"started": 3, "pledged": 1}, 2: {"started": 1}}
    rows = flows.versions(db.session, NAME)
    assert [(r.id, r.applications, r.in_flight, r.live) for r in rows] == [(2, 1, 1, True), (1, 4, 4, False)]
    assert db.session.scalar(select(func.count()).select_from(Application)) == 5


def test_actor_names() -> None:
    assert flows.actor_of("alice") == "cli:alice"
    assert flows.actor_of(12) == "account:12"
    assert flows.actor_of("account:3") == "account:3"
    assert flows.parse_mapping(["a=b", " c = d "]) == {"a": "b", "c": "d"}
    with pytest.raises(InvalidInput):
        flows.parse_mapping(["a"])

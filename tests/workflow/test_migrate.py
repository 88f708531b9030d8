"""Moving in-flight applications to another flow version: the `migrate_flow` event, its
refusals, timers and SMS, and replay/audit/export across the move.

The flow variants here (the deadline extension, a removed state) are also used by
test_diff.py and test_impact.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from gzsb.audit.service import verify_all
from gzsb.bootstrap import engine, registries
from gzsb.config import ROOT
from gzsb.errors import FlowError, Forbidden, GuardRefused, MigrationRefused, NotFound
from gzsb.extensions import db
from gzsb.models import Outbox, Timer
from gzsb.store import FLOWS, history_rows, publish
from gzsb.worker.drain import fire_due_timers
from gzsb.workflow.engine import MIGRATE_EVENT, Engine
from gzsb.workflow.history import EventRow, canonical, event_hash
from gzsb.workflow.history_export import export_lines, verify_export
from gzsb.workflow.history_replay import replay, replay_application
from gzsb.workflow.loader import load_flow
from gzsb.workflow.spec import FlowSpec
from gzsb.workflow.validate import check_flow, check_flow_file
from tests.conftest import Clock
from tests.drive import ADMIN, STAFF, application, chain, history, snapshot, sql
from tests.review_support import add_upload
from tests.support import Applicant, pay, student_payload, to_payment

REGISTRIES = registries()
FLOW = check_flow_file(ROOT / "flows" / "enrollment.yaml", REGISTRIES)
OLD_CLOSE, NEW_CLOSE = "2027-01-12T17:00:00+08:00", "2027-03-31T17:00:00+08:00"
AFTER_OLD_CLOSE = datetime(2027, 2, 1, 2, 0, tzinfo=UTC)  # 10:00 in Beijing, between the two closes
APPROVER = "account:902"


def edited(*edits: tuple[str, str], source: str = "edited.yaml", validate: bool = True) -> FlowSpec:
    """The shipped flow with each (old, new) text replaced exactly once."""
    text = FLOW.text
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return check_flow(text, source, REGISTRIES.without_needs()) if validate else load_flow(text, source)


EXTEND = (OLD_CLOSE, NEW_CLOSE)
# Without materials_rejected: a rejection sends the applicant back to materials_pending.
WITHOUT_REJECTED = (
    (
        "  # Rejected by the confirmation point: the same upload page with the reason, its own state\n"
        '  # so that a rejection is not announced with the "请上传审核材料" SMS of materials_pending.\n'
        "  materials_rejected: {label: 材料审核未通过, page: materials, stage: materials,"
        " status: 材料审核未通过，请按原因修改后重新提交, button: 修改材料}\n",
        "",
    ),
    (
        "    from: materials_review\n    to: materials_rejected\n",
        "    from: materials_review\n    to: materials_pending\n",
    ),
    (
        "  - event: submit_materials\n    from: materials_rejected\n    to: materials_review\n"
        "    actors: [student]\n    label: 提交审核\n    step: materials\n"
        "    guards: [{window_open: registration}]\n",
        "",
    ),
    (
        "  - {event: purge_id_card, from: materials_rejected, to: materials_rejected, actors: [system], "
        "step: purge_id_card}\n",
        "",
    ),
    (
        "  - {event: resolve_xueji_correction, from: materials_rejected, to: materials_rejected, actors: [staff], "
        "label: 处理学籍更正申请, step: xueji_correction}\n",
        "",
    ),
    (
        "  - {event: freeze_for_appeal, from: materials_rejected, to: frozen, actors: [staff, admin], "
        "label: 账号申诉通过, step: appeal_freeze}\n",
        "",
    ),
    (
        "  - {event: book_onsite, from: materials_rejected, to: materials_rejected, actors: [student], label: 预约, "
        "step: book_onsite, guards: [onsite_required, onsite_changeable]}\n",
        "",
    ),
    (
        "  - {event: cancel_onsite, from: materials_rejected, to: materials_rejected, actors: [student], "
        "label: 取消预约, step: cancel_onsite, guards: [onsite_booked, onsite_changeable]}\n",
        "",
    ),
)
EXTENDED = edited(EXTEND, source="extended.yaml")
REMOVED_STATE = edited(*WITHOUT_REJECTED, source="without-rejected.yaml")


def resolver(*flows: FlowSpec) -> Callable[[str], FlowSpec]:
    return {f.sha256: f for f in (FLOW, *flows)}.__getitem__


def verdicts_ok() -> None:
    found = list(verify_all(db.session))
    assert found and all(v.ok for v in found), [v.describe() for v in found]


def cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def migrate(eng: Engine, who: Applicant, target: FlowSpec, **mapping: str) -> Any:
    return eng.migrate(
        who.application_id, target, mapping=mapping, actor=ADMIN, approved_by=APPROVER, reason="延长报名时间"
    )


def in_materials_rejected(eng: Engine, who: Applicant) -> None:
    to_payment(eng, who)
    assert pay(eng, who).to_state == "materials_pending"
    eng.fire(who.application_id, "submit_materials", who.actor, {"files": [add_upload(who.application_id).uid]})
    eng.fire(who.application_id, "reject_materials", STAFF, {"reason": "退役证不清晰"})
    assert application(who.application_id).state == "materials_rejected"


def test_a_flow_may_not_declare_the_reserved_event() -> None:
    with pytest.raises(FlowError) as failed:
        edited(("  - event: confirm_info\n", f"  - event: {MIGRATE_EVENT}\n"), source="reserved.yaml")
    assert any(
        p.startswith("reserved.yaml: transitions[7].event: 'migrate_flow' is reserved for the engine")
        for p in failed.value.problems
    ), failed.value.problems


def test_deadline_extension_lets_a_refused_applicant_go_on(
    app: Flask, make_applicant: Any, eng: Engine, clock: Clock
) -> None:
    who = make_applicant()
    version1 = application(who.application_id).flow_version_id
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    clock.now = AFTER_OLD_CLOSE
    with pytest.raises(GuardRefused) as refused:
        eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    assert refused.value.reasons[0].startswith("报名时间已截止")

    version2, _ = publish(db.session, EXTENDED, "admin")
    outbox_before = db.session.query(Outbox).count()
    fired = migrate(eng, who, EXTENDED)
    assert (fired.event, fired.from_state, fired.to_state, fired.seq) == (MIGRATE_EVENT, "pledged", "pledged", 2)
    record = application(who.application_id)
    assert (record.flow_version_id, record.state, record.seq, record.head) == (version2.id, "pledged", 2, fired.hash)
    moved = history(who.application_id)[-1]
    assert (moved.event, moved.role, moved.actor, moved.guards) == (MIGRATE_EVENT, "admin", ADMIN.id, "[]")
    assert moved.flow_sha256 == EXTENDED.sha256
    assert json.loads(moved.payload) == {
        "from_flow": FLOW.sha256,
        "to_flow": EXTENDED.sha256,
        "mapping": {},
        "requested_by": ADMIN.id,
        "approved_by": APPROVER,
        "reason": "延长报名时间",
    }
    assert db.session.query(Outbox).count() == outbox_before  # same state: no SMS

    assert eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who)).to_state == "preferences"
    assert history(who.application_id)[-1].flow_sha256 == EXTENDED.sha256
    verdicts_ok()
    result = cli(app, "audit", "verify")
    assert result.exit_code == 0 and "1 application(s), 3 event(s): 0 failed" in result.output, result.output

    record = application(who.application_id)
    rows = list(history_rows(db.session, record.id))
    flows = resolver(EXTENDED)
    verdict = replay(record.uid, FLOW, rows, flows=flows, head=record.head, state=record.state)
    assert verdict.ok and verdict.flow == EXTENDED.sha256 and verdict.events == 3, verdict.describe()
    without = replay(record.uid, FLOW, rows, head=record.head)
    assert without.bad_seq == 2 and f"needs flow {EXTENDED.sha256[:12]}" in without.problem
    assert replay_application(record.uid, EXTENDED, rows, flows=flows, head=record.head, state=record.state).ok

    # Offline: the header carries the version the history started under.
    lines = list(export_lines(record.uid, EXTENDED, record.state, record.head, rows, flows=flows))
    header = json.loads(lines[0])
    assert header["flow"] == EXTENDED.sha256 and header["flows"] == {FLOW.sha256: FLOW.text}
    assert verify_export(lines, load_flow).ok
    stripped = canonical({k: v for k, v in header.items() if k != "flows"})
    assert not verify_export([stripped, *lines[1:]], load_flow).ok
    forged = canonical({**header, "flows": {FLOW.sha256: FLOW.text.replace("160", "1")}})
    assert "does not match its SHA-256" in verify_export([forged, *lines[1:]], load_flow).problem

    # Switching the version back behind the history's back is caught.
    sql("UPDATE applications SET flow_version_id = :v WHERE id = :a", v=version1, a=record.id)
    bad = next(iter(verify_all(db.session)))
    assert not bad.ok and "application row says flow" in bad.problem, bad.describe()


def test_exports_of_unmigrated_histories_keep_their_form(app: Flask, make_applicant: Any, eng: Engine) -> None:
    who = make_applicant()
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    record = application(who.application_id)
    rows = list(history_rows(db.session, record.id))
    plain = list(export_lines(record.uid, FLOW, record.state, record.head, rows))
    assert list(export_lines(record.uid, FLOW, record.state, record.head, rows, flows=resolver())) == plain
    assert "flows" not in json.loads(plain[0]) and verify_export(plain, load_flow).ok


def test_a_removed_state_needs_a_mapping(app: Flask, make_applicant: Any, eng: Engine) -> None:
    who = make_applicant(category="退役士兵")
    in_materials_rejected(eng, who)
    version2, _ = publish(db.session, REMOVED_STATE, "admin")
    uid = application(who.application_id).uid
    before = snapshot(who.application_id)

    with pytest.raises(MigrationRefused) as refused:
        migrate(eng, who, REMOVED_STATE)
    message = str(refused.value)
    assert f"application {uid} in state 'materials_rejected'" in message
    assert "has no state 'materials_rejected'; map it to one of: approved, confirming," in message
    assert refused.value.http_status == 409
    assert snapshot(who.application_id) == before

    with pytest.raises(MigrationRefused) as unknown:
        migrate(eng, who, REMOVED_STATE, materials_rejected="materials_rejectd")
    assert "materials_rejected=materials_rejectd" in str(unknown.value) and uid in str(unknown.value)
    assert snapshot(who.application_id) == before

    fired = migrate(eng, who, REMOVED_STATE, materials_rejected="materials_pending")
    assert (fired.from_state, fired.to_state) == ("materials_rejected", "materials_pending")
    record = application(who.application_id)
    assert (record.state, record.flow_version_id) == ("materials_pending", version2.id)
    assert json.loads(history(record.id)[-1].payload)["mapping"] == {"materials_rejected": "materials_pending"}
    sms = db.session.scalars(select(Outbox).where(Outbox.kind == "sms").order_by(Outbox.id.desc())).first()
    assert sms is not None and sms.payload == {"application": uid, "seq": fired.seq, "template": "materials_required"}

    files = {"files": [add_upload(who.application_id).uid]}
    assert eng.fire(who.application_id, "submit_materials", who.actor, files).to_state == "materials_review"
    verdicts_ok()


def test_a_failed_migration_changes_nothing(
    app: Flask, make_applicant: Any, eng: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    who = make_applicant()
    to_payment(eng, who)  # payment_pending: a timer to cancel and re-arm
    before = snapshot(who.application_id), application(who.application_id).flow_version_id

    with pytest.raises(NotFound):  # the target was never published
        migrate(eng, who, EXTENDED)
    assert (snapshot(who.application_id), application(who.application_id).flow_version_id) == before

    publish(db.session, EXTENDED, "admin")

    def broken(*_args: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(eng.store, "arm_timer", broken)  # after the event is appended and timers cancelled
    with pytest.raises(RuntimeError):
        migrate(eng, who, EXTENDED)
    assert (snapshot(who.application_id), application(who.application_id).flow_version_id) == before
    verdicts_ok()


def test_refused_without_an_admin_or_a_change_of_flow(app: Flask, make_applicant: Any, eng: Engine) -> None:
    who = make_applicant()
    publish(db.session, EXTENDED, "admin")
    before = snapshot(who.application_id)
    with pytest.raises(Forbidden):
        eng.migrate(who.application_id, EXTENDED, mapping={}, actor=who.actor, approved_by=None)
    with pytest.raises(MigrationRefused, match="already runs on flow"):
        migrate(eng, who, FLOW)
    assert snapshot(who.application_id) == before


def test_timers_are_rearmed_under_the_target(app: Flask, make_applicant: Any, eng: Engine, clock: Clock) -> None:
    who = make_applicant()
    to_payment(eng, who)
    slower = edited(EXTEND, ("after: 24h", "after: 48h"), source="slower.yaml")
    publish(db.session, slower, "admin")
    armed_at = clock.advance(hours=20)
    fired = eng.migrate(who.application_id, slower, mapping={}, actor=ADMIN, approved_by=None)

    timers = db.session.scalars(select(Timer).where(Timer.application_id == who.application_id).order_by(Timer.id))
    old, new = timers.all()
    assert old.outcome == "cancelled"
    assert (new.state, new.event, new.armed_seq, new.fired_at) == (
        "payment_pending",
        "payment_expired",
        fired.seq,
        None,
    )
    assert new.due_at.replace(tzinfo=UTC) == armed_at + slower.timers[0].after
    assert fire_due_timers(db.session, engine(), clock.advance(hours=30)) == 0  # the old 24h would be due now
    assert fire_due_timers(db.session, engine(), clock.advance(hours=19)) == 1
    record = application(who.application_id)
    assert record.state == "identity_verified"
    assert history(record.id)[-1].flow_sha256 == slower.sha256
    verdicts_ok()


def test_flows_are_found_by_sha(app: Flask) -> None:
    assert FLOWS.by_sha(db.session, FLOW.sha256).sha256 == FLOW.sha256
    with pytest.raises(NotFound, match="no published flow version"):
        FLOWS.by_sha(db.session, EXTENDED.sha256)


UID = "0123456789abcdef0123456789abcdef"


def with_migration(to_state: str = "pledged", role: str = "admin", **payload: Any) -> list[Any]:
    """accept_pledge under FLOW, then a correctly hashed migrate_flow to REMOVED_STATE."""
    (first,) = chain(UID, FLOW, [("accept_pledge", "started", "pledged", "student", None, {"agree": True})])
    body = canonical({"from_flow": FLOW.sha256, "to_flow": REMOVED_STATE.sha256, "mapping": {}, **payload})
    at, target = "2026-12-01T03:00:00.000000Z", REMOVED_STATE.sha256
    digest = event_hash(
        first.hash, UID, 2, MIGRATE_EVENT, "pledged", to_state, "a:1", role, "[]", body, target, at, "{}"
    )
    return [
        first,
        EventRow(2, MIGRATE_EVENT, "pledged", to_state, "a:1", role, "[]", body, target, at, first.hash, digest, "{}"),
    ]


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        (with_migration(), ""),
        (with_migration(mapping={"pledged": "preferences"}, to_state="preferences"), ""),
        (with_migration(to_state="preferences"), "moved 'pledged' to 'preferences', but its mapping says 'pledged'"),
        (with_migration(to_state="materials_rejected", mapping={"pledged": "materials_rejected"}), "does not have"),
        (with_migration(role="staff"), "role 'staff' may not fire 'migrate_flow' (allowed: admin)"),
        (with_migration(from_flow="f" * 64), "migration from flow ffffffffffff, but the application ran on"),
        (with_migration(to_flow=EXTENDED.sha256), "recorded under flow"),
        (with_migration(mapping=None), "migration payload needs from_flow, to_flow and mapping"),
    ],
    ids=["identity", "mapped", "not_as_mapped", "unknown_target_state", "not_admin", "other_source", "other_target",
         "malformed"],
)  # fmt: skip
def test_replay_checks_each_migration(rows: list[Any], problem: str) -> None:
    verdict = replay(UID, FLOW, rows, flows=resolver(REMOVED_STATE, EXTENDED), head=rows[-1].hash)
    if not problem:
        assert verdict.ok and verdict.flow == REMOVED_STATE.sha256, verdict.describe()
    else:
        assert verdict.bad_seq == 2 and problem in verdict.problem, verdict.describe()

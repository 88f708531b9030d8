"""What-if replay looks at guards: a stricter 完成报名 (xueji_found added) is re-evaluated on
the data each event left behind, for a student whose 学籍 was not found."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from gzsb.audit.service import application_history
from gzsb.extensions import db
from gzsb.workflow.engine import Engine
from gzsb.workflow.loader import load_flow
from gzsb.workflow.whatif import whatif
from tests.audit.test_tamper import cli
from tests.conftest import FLOW_FILE
from tests.drive import uid_of
from tests.support import new_applicant, student_payload

STRICT = "guards: [{window_open: registration}, xueji_checked]"


def stricter_flow(tmp_path: Path, guards: str = "[{window_open: registration}, xueji_checked, xueji_found]") -> Path:
    text = FLOW_FILE.read_text(encoding="utf-8")
    assert text.count(STRICT) == 1
    path = tmp_path / "stricter.yaml"
    path.write_text(text.replace(STRICT, f"guards: {guards}"), encoding="utf-8")
    return path


def not_found_student(eng: Engine) -> str:
    who = new_applicant(41, in_registry=False)
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    eng.fire(who.application_id, "check_xueji", who.actor, {})
    eng.fire(
        who.application_id, "submit_preferences", who.actor, {"choices": [{"institution": "10060", "major": "080901"}]}
    )
    return uid_of(who.application_id)


def test_a_stricter_guard_is_re_evaluated_and_refuses(app: Flask, eng: Engine, tmp_path: Path) -> None:
    uid = not_found_student(eng)
    path = stricter_flow(tmp_path)
    _app, rows = application_history(db.session, uid)
    report = whatif(uid, load_flow(path.read_text(encoding="utf-8"), str(path)), rows)
    first = report.first_problem
    assert first is not None and first.event == "submit_preferences" and first.seq == 4
    (verdict,) = first.new_guards
    assert verdict.guard == "xueji_found" and verdict.outcome == "refused"
    result = cli(app, "audit", "replay", "--application", uid, "--flow", str(path))
    assert result.exit_code == 1
    assert "stops being legal under stricter.yaml at seq 4: xueji_found: would be refused: " in result.output


def test_a_guard_on_redacted_data_cannot_be_re_evaluated(app: Flask, eng: Engine, tmp_path: Path) -> None:
    from gzsb.workflow.registry import GUARDS

    if "needs_name" not in GUARDS:
        GUARDS.register("needs_name")(lambda ctx, _args: None if ctx.get("basic_info", "name") else "无姓名")
    uid = not_found_student(eng)
    path = stricter_flow(tmp_path, "[{window_open: registration}, xueji_checked, needs_name]")
    _app, rows = application_history(db.session, uid)
    report = whatif(uid, load_flow(path.read_text(encoding="utf-8"), str(path)), rows)
    event = next(e for e in report.events if e.event == "submit_preferences")
    (verdict,) = event.new_guards
    assert verdict.outcome == "unknown" and "basic_info.name" in verdict.describe()
    assert "cannot be re-evaluated: needs basic_info.name" in verdict.describe()

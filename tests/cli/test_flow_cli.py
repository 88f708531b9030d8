"""`flask flow publish|versions|diff|impact|migrate|propose|approve|reject` end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from gzsb.config import ROOT
from gzsb.extensions import db
from gzsb.store import live_version
from gzsb.workflow.engine import Engine
from tests.admin.test_flows import AFTER_OLD_CLOSE, EXTENDED_TEXT, NAME, NO_CONFIRMING_TEXT, pledged
from tests.conftest import Clock
from tests.drive import application
from tests.support import Applicant, student_payload, to_confirming

SHIPPED = str(ROOT / "flows" / "enrollment.yaml")


def cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_publish_tells_the_truth_and_rolls_back(app: Flask, tmp_path: Path) -> None:
    result = cli(app, "flow", "publish", SHIPPED)
    assert result.exit_code == 0 and "already live as version 1" in result.output, result.output
    extended = write(tmp_path, "extended.yaml", EXTENDED_TEXT)
    refused = cli(app, "flow", "publish", extended)
    assert refused.exit_code == 1 and "second admin" in refused.stderr

    assert cli(app, "flow", "propose", extended, "--by", "alice").exit_code == 0
    self_approved = cli(app, "flow", "approve", "1", "--by", "alice")
    assert self_approved.exit_code == 1 and "self-approval" in self_approved.stderr
    approved = cli(app, "flow", "approve", "1", "--by", "bob")
    assert approved.exit_code == 0 and "published as version 2" in approved.output, approved.output
    assert live_version(db.session, NAME).id == 2

    back = cli(app, "flow", "publish", SHIPPED, "--by", "carol")
    assert back.exit_code == 0 and "version 1 is live again (was version 2)" in back.output, back.output
    assert live_version(db.session, NAME).id == 1
    listing = cli(app, "flow", "versions")
    lines = listing.output.splitlines()
    assert lines[0].split()[0] == "2" and "by cli:alice approved by cli:bob" in lines[0]
    assert lines[1].split()[:2] == ["*", "1"] and "by cli:carol" in lines[1] and lines[1].endswith("LIVE")


def test_a_bad_flow_is_neither_proposed_nor_analysed(app: Flask, tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", EXTENDED_TEXT.replace("window_open", "window_opn", 1))
    for command in (("propose", bad, "--by", "alice"), ("impact", bad)):
        result = cli(app, "flow", *command)
        assert result.exit_code == 1 and "window_opn" in result.stderr and "not valid" in result.stderr
    assert "proposal" not in cli(app, "flow", "proposals").output


def test_deadline_extension_by_cli(
    app: Flask, tmp_path: Path, make_applicant: Callable[..., Applicant], eng: Engine, clock: Clock
) -> None:
    waiting = [pledged(eng, make_applicant) for _ in range(3)]
    clock.now = AFTER_OLD_CLOSE
    extended = write(tmp_path, "extended.yaml", EXTENDED_TEXT)

    diff = cli(app, "flow", "diff", "1", extended)
    assert diff.exit_code == 0 and "registration" in diff.output and "+  registration:" in diff.output, diff.output
    report = cli(app, "flow", "impact", extended)
    assert report.exit_code == 0 and "unblocked: 3 (pledged 3)" in report.output, report.output
    assert application(waiting[0].application_id).uid in report.output and "报名时间已截止" in report.output
    as_json = json.loads(cli(app, "flow", "impact", extended, "--json", "--limit", "1").output)
    assert as_json["counts"]["unblocked"] == 3 and len(as_json["items"]["unblocked"]) == 1
    assert as_json["truncated"]["unblocked"]

    assert cli(app, "flow", "propose", extended, "--by", "alice").exit_code == 0
    assert cli(app, "flow", "approve", "1", "--by", "bob").exit_code == 0  # published, nobody moved yet
    dry = cli(app, "flow", "migrate", "--to", "2", "--dry-run")
    assert dry.exit_code == 0 and "dry run: 3 application(s)" in dry.output and "would_move 3" in dry.output
    assert application(waiting[0].application_id).flow_version_id == 1
    moved = cli(app, "flow", "migrate", "--to", "2", "--by", "alice", "--approved-by", "bob")
    assert moved.exit_code == 0 and "moved 3" in moved.output and moved.output.count("moved ") == 4, moved.output
    for who in waiting:
        assert eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who)).to_state == (
            "preferences"
        )
    verified = cli(app, "audit", "verify")
    assert verified.exit_code == 0 and "3 application(s)" in verified.output and "0 failed" in verified.output
    counts = cli(app, "flow", "versions").output.splitlines()
    assert "3 application(s), 3 in flight" in counts[0] and "0 application(s)" in counts[1]


def test_migrate_refuses_loudly_and_maps(
    app: Flask, tmp_path: Path, make_applicant: Callable[..., Applicant], eng: Engine
) -> None:
    stuck = make_applicant()
    to_confirming(eng, stuck)
    path = write(tmp_path, "no-confirming.yaml", NO_CONFIRMING_TEXT)
    stranded = cli(app, "flow", "impact", path)
    assert "stranded: 1 (confirming 1)" in stranded.output, stranded.output
    assert cli(app, "flow", "propose", path, "--by", "alice", "--migrate").exit_code == 0
    approved = cli(app, "flow", "approve", "1", "--by", "bob")
    uid = application(stuck.application_id).uid
    assert approved.exit_code == 1 and f"REFUSED {uid} in 'confirming'" in approved.stderr, approved.stderr
    assert "refused 1" in approved.output
    mapped = cli(app, "flow", "migrate", "--to", "2", "--map", "confirming=preferences", "--only-state", "confirming")
    assert mapped.exit_code == 0 and f"moved {uid}: confirming -> preferences" in mapped.output, mapped.output
    assert cli(app, "flow", "migrate", "--to", "2", "--map", "confirming").exit_code == 1


def test_reject(app: Flask, tmp_path: Path) -> None:
    extended = write(tmp_path, "extended.yaml", EXTENDED_TEXT)
    assert cli(app, "flow", "propose", extended, "--by", "alice", "--note", "延期").exit_code == 0
    assert cli(app, "flow", "reject", "1", "--by", "alice", "--reason", "x").exit_code == 1
    result = cli(app, "flow", "reject", "1", "--by", "bob", "--reason", "日期不对")
    assert result.exit_code == 0 and "[rejected by cli:bob]" in result.output
    assert cli(app, "flow", "approve", "1", "--by", "carol").exit_code == 1

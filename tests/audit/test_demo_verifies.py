"""A clean demo database verifies: `flask demo seed`, then `flask audit checkpoint` and
`flask audit verify` with the log checks."""

from __future__ import annotations

from flask import Flask

from gzsb.cli.demo import seed
from tests.audit.test_tamper import cli


def test_seeded_demo_verifies(app: Flask) -> None:
    seed(app, per_state=1)
    before = cli(app, "audit", "verify")
    assert before.exit_code == 0, before.output
    assert cli(app, "audit", "checkpoint").exit_code == 0
    result = cli(app, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert " 0 failed; " in result.output and " 0 problem(s), 0 event(s) not yet logged" in result.output

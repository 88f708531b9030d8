"""`flask waitroom …` switches the room for every node and takes the flow's earliest opening."""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import Flask

from gzsb.extensions import db
from gzsb.store import publish
from gzsb.waitroom import EXTENSION
from gzsb.workflow.loader import load_flow
from tests.conftest import Clock
from tests.workflow.test_window_groups import staggered


def run(app: Flask, *args: str) -> dict:
    result = app.test_cli_runner().invoke(args=["waitroom", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_on_takes_the_earliest_group_opening_and_off_lets_everybody_through(make_app: Callable[..., Flask]) -> None:
    node, other = make_app(Clock(), "a"), make_app(Clock(), "b")
    with node.app_context():
        publish(db.session, load_flow(staggered('    by_district: {"12": {opens: "2026-11-15T20:00:00+08:00"}}\n')))
        db.session.commit()
        shown = run(node, "on", "--rate", "12.5", "--cap", "4000")
    assert shown["enabled"] is True and shown["rate_per_second"] == 12.5 and shown["active_cap"] == 4000
    assert shown["opens"] == "2026-11-15T12:00:00+00:00"  # the district's, earlier than the window's own
    seen_by_other = other.extensions[EXTENSION].room.settings()
    assert (seen_by_other.enabled, seen_by_other.rate, seen_by_other.cap) == (True, 12.5, 4000)
    with node.app_context():
        assert run(node, "off")["enabled"] is False
        assert run(node, "set", "--opens", "")["opens"] is None
    refused = node.test_cli_runner().invoke(args=["waitroom", "reset"])
    assert refused.exit_code == 1 and "--yes" in refused.output

"""Key paths of flow problems → lines of the YAML text (the workbench's gutter markers)."""

from __future__ import annotations

import pytest

from gzsb.bootstrap import registries
from gzsb.config import TestConfig
from gzsb.errors import FlowError
from gzsb.workflow.validate import check_flow
from gzsb.workflow.yamlpos import compose, locate, node_line, parse_path, split_problem
from tests.conftest import FLOW_FILE

TEXT = """\
flow: demo
title: 演示
initial: started
states:
  started: {label: 开始, page: pledge}
  done:
    label: 完成
    page: download
    final: true
transitions:
  - event: finish
    from: started
    to: done
    actors: [student]
    guards: [xueji_checked, {window_open: registration}]
notify:
  a.b: sms_x
"""
SHIPPED = FLOW_FILE.read_text(encoding="utf-8")


def line_of(text: str, needle: str, after: int = 0) -> int:
    """1-based number of the first line containing ``needle`` after line ``after``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if number > after and needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


def test_parse_path() -> None:
    assert parse_path("transitions[4].guards[0]") == ["transitions", 4, "guards", 0]
    assert parse_path("states.paid.page") == ["states", "paid", "page"]
    assert parse_path("") == []


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ("(top)", 1),
        ("initial", 3),
        ("states.started", 5),
        ("states.started.page", 5),  # a flow mapping: everything on one line
        ("states.done.page", 8),
        ("states.done (the key)", 6),
        ("transitions[0]", 11),
        ("transitions[0].to", 13),
        ("transitions[0].guards[0]", 15),
        ("transitions[0].guards[1].window_open", 15),
        ("notify.a.b", 17),  # a key containing a dot
        ("states.done.stage", 6),  # missing key: the deepest node that exists
        ("transitions[7].event", 10),  # past the end of a list: the list's key
    ],
)
def test_node_line(path: str, line: int) -> None:
    assert node_line(compose(TEXT), path) == line


def test_unparseable_text_has_no_tree() -> None:
    assert compose("a: [1, 2") is None
    assert node_line(None, "a") is None


def test_split_problem() -> None:
    assert split_problem("editor: states.x.page: unknown page 'p'", "editor") == ("states.x.page", "unknown page 'p'")
    assert split_problem("editor: line 3, column 4: not valid YAML: x", "editor") == (
        "",
        "line 3, column 4: not valid YAML: x",
    )


def test_validation_problems_of_the_shipped_flow_land_on_their_lines() -> None:
    """A typo'd guard, page and state in the real flow: each problem at the line holding it."""
    text = SHIPPED.replace("xueji_checked", "xueji_chekced", 1).replace("page: pledge", "page: pledg", 1)
    with pytest.raises(FlowError) as caught:
        check_flow(text, "editor", registries(TestConfig))
    located = locate(text, caught.value.problems, "editor")
    by_path = {p.path: p for p in located}
    guard = next(p for p in located if "xueji_chekced" in p.message)
    assert guard.line == line_of(text, "xueji_chekced")
    assert guard.path.startswith("transitions[") and guard.path.endswith("].guards[1]")
    page = next(p for p in located if "pledg'" in p.message)
    assert page.line == line_of(text, "page: pledg,")
    assert all(p.line is not None for p in by_path.values())


def test_a_syntax_error_uses_the_parsers_mark() -> None:
    bad = SHIPPED.replace("initial: ", "initial: [", 1)
    with pytest.raises(FlowError) as caught:
        check_flow(bad, "editor", registries(TestConfig))
    (problem,) = locate(bad, caught.value.problems, "editor")
    assert problem.path == "" and problem.line is not None and problem.column is not None
    assert "not valid YAML" in problem.message
    assert line_of(bad, "initial: [") <= problem.line <= line_of(bad, "initial: [") + 2


def test_duplicate_key_points_at_the_second_key() -> None:
    text = TEXT.replace("  done:\n", "  started: {label: x, page: pledge}\n  done:\n")
    with pytest.raises(FlowError) as caught:
        check_flow(text, "editor", registries(TestConfig))
    (problem,) = locate(text, caught.value.problems, "editor")
    assert problem.line == 6 and "duplicate key 'started'" in problem.message


def test_funnel_counts_are_drawn_into_the_states() -> None:
    """render_svg(counts=...): every state shows its count, the fullest is shaded darkest, and
    applications in states the flow lacks are listed in a note."""
    from gzsb.workflow.graph import HEAT_HIGH, heat, render_svg
    from gzsb.workflow.loader import load_flow

    flow = load_flow(SHIPPED, "enrollment.yaml")
    svg = render_svg(flow, counts={"started": 7, "pledged": 3, "gone_state": 2}).decode("utf-8")
    assert "7 人" in svg and "3 人" in svg and svg.count("0 人") == len(flow.states) - 2
    assert heat(7, 7) == "#" + "".join(f"{c:02x}" for c in HEAT_HIGH) and heat(7, 7) in svg
    assert "gone_state: 2 人" in svg
    assert " 人<" not in render_svg(flow).decode("utf-8")  # no counts asked, none drawn

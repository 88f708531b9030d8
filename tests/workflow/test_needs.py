"""The flow is the source of truth for names: a flow lacking one that an area's code relies on
is refused, naming the area; and code does not name flow states or events in string literals."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gzsb.bootstrap import registries
from gzsb.cli.names import DEMO
from gzsb.config import ROOT, TestConfig
from gzsb.errors import ConfigurationError, FlowError
from gzsb.workflow.loader import load_flow
from gzsb.workflow.needs import Need, Needs, names_in
from gzsb.workflow.validate import check_flow, validate_with

FLOW_FILE = ROOT / "flows" / "enrollment.yaml"
SHIPPED = FLOW_FILE.read_text(encoding="utf-8")
PRODUCT = registries(TestConfig)  # built without a Flask app
SKETCH = PRODUCT.without_needs()


def renamed(text: str, name: str, new: str) -> str:
    """The flow with one state/event/window/setting renamed everywhere it is used as that name.

    Steps, pages and stages live in other namespaces that may share the word (step
    ``create_order``, page ``manual_identity``), and so do the SMS templates that ``notify``
    maps to; those keep their names so the renamed flow is otherwise valid.
    """
    head, _, notify = text.partition("\nnotify:")
    word = re.compile(rf"(?<!step: )(?<!page: )(?<!stage: )(?<!key: )\b{re.escape(name)}\b")
    head = word.sub(new, head)
    notify = re.sub(rf"^(\s+){re.escape(name)}:", rf"\g<1>{new}:", notify, flags=re.MULTILINE)
    return f"{head}\nnotify:{notify}"


def grouped(needs: Needs) -> dict[tuple[str, str], list[Need]]:
    found: dict[tuple[str, str], list[Need]] = {}
    for need in needs:
        found.setdefault((need.kind, need.name), []).append(need)
    return found


NEEDED = grouped(PRODUCT.needs)


def test_every_area_declares_what_it_relies_on() -> None:
    areas = {n.area for n in PRODUCT.needs}
    assert {"accounts", "enrollment", "identity", "payments", "materials", "staff", "regform"} <= areas
    assert all(n.purpose for n in PRODUCT.needs)


def test_the_shipped_flow_has_every_needed_name() -> None:
    flow = check_flow(SHIPPED, "enrollment.yaml", PRODUCT)
    assert PRODUCT.needs.missing(flow) == [] and DEMO.missing(flow) == []


@pytest.mark.parametrize(("kind", "name"), sorted(NEEDED), ids=[f"{k}:{n}" for k, n in sorted(NEEDED)])
def test_renaming_a_needed_name_is_refused_naming_the_area(kind: str, name: str) -> None:
    text = renamed(SHIPPED, name, f"x_{name}")
    # The rename is consistent: without the needs the flow is valid ...
    flow = check_flow(text, "enrollment.yaml", SKETCH)
    assert name not in names_in(flow, kind)  # type: ignore[arg-type]
    # ... and with them it is refused, by exactly that name, naming every area that needs it.
    with pytest.raises(FlowError) as refused:
        check_flow(text, "enrollment.yaml", PRODUCT)
    section = {"state": "states", "event": "transitions", "window": "windows", "setting": "settings"}[kind]
    [problem] = refused.value.problems
    assert problem.startswith(f"enrollment.yaml: {section}: {kind} {name!r} is needed by area ")
    for need in NEEDED[(kind, name)]:
        assert f"area {need.area!r} ({need.purpose})" in problem
    assert f"x_{name}" in problem.split("; known: ")[1]  # what would be valid


def test_the_message_names_file_key_path_area_purpose_and_what_is_valid() -> None:
    text = SHIPPED.replace("payment_pending", "order_open")
    problems = validate_with(load_flow(text, "enrollment.yaml"), PRODUCT)
    assert problems == [
        "enrollment.yaml: states: state 'payment_pending' is needed by area 'payments' "
        "(the open order page: a gateway notify is applied only here); known: approved, confirming, "
        "face_checking, frozen, identity_pending, identity_verified, manual_identity, materials_pending, "
        "materials_rejected, materials_review, order_open, pledged, preferences, started"
    ]


def test_a_name_two_areas_need_names_both() -> None:
    text = renamed(SHIPPED, "manual_identity", "by_hand")
    with pytest.raises(FlowError) as refused:
        check_flow(text, "enrollment.yaml", PRODUCT)
    [problem] = refused.value.problems
    assert "area 'identity' (" in problem and "area 'staff' (the staff queue of manual identity checks)" in problem


def test_the_same_need_declared_twice_differently_is_an_error() -> None:
    needs = Needs()
    needs.area("a").state("s", "one purpose")
    assert needs.area("a").state("s", "one purpose") == "s"  # importing twice is harmless
    with pytest.raises(ConfigurationError, match="declares state 's' twice"):
        needs.area("a").state("s", "another purpose")


@pytest.mark.parametrize("name", ["started", "reject_materials", "registration"])
def test_the_demo_checks_its_own_names(name: str) -> None:
    flow = check_flow(renamed(SHIPPED, name, f"x_{name}"), "enrollment.yaml", SKETCH)
    [missing] = DEMO.missing(flow)
    assert missing.name == name and missing.needs[0].area == "demo"


# ------------------------------------------------------------------ no names in literals

PACKAGE = ROOT / "gzsb"
# String literals equal to a flow name that are not flow names, each with why.
ALLOWED = {
    ("accounts/views.py", "fee_yuan"): "a key of the home page's window summary (home.html reads it)",
    ("identity/service.py", "approved"): "a staff review decision (approved/rejected), not the state",
    ("staff/steps.py", "approved"): "a staff review decision (approved/rejected), not the state",
    ("config.py", "identity_verified"): "an SMS template name (the flow's notify maps the state to it)",
    ("config.py", "materials_rejected"): "an SMS template name, emitted by the rejection step",
    ("enrollment/steps.py", "preferences"): "the data key of the 志愿 section",
    ("regform/content.py", "preferences"): "the data key of the 志愿 section",
    ("regform/service.py", "preferences"): "the data key of the 志愿 section",
    ("admin/flows.py", "approved"): "a proposal's status (proposed/approved/rejected/published), not the state",
    ("staff/service.py", "preferences"): "the data key of the 志愿 section",
}


def flow_names() -> set[str]:
    flow = load_flow(SHIPPED, "enrollment.yaml")
    return {name for kind in ("state", "event", "window", "setting") for name in names_in(flow, kind)}


def scanned() -> Iterator[Path]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "workflow" or path.name == "names.py":
            continue
        yield path


def literals(tree: ast.AST) -> Iterator[ast.Constant]:
    """String constants, except docstrings and the name a step or guard registers under
    (its own namespace, checked by the validator's step and guard registries)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register":
            skip.update(id(arg) for arg in node.args[:1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node


def hard_coded(names: set[str]) -> list[tuple[str, int, str]]:
    found = []
    for path in scanned():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [(path.relative_to(PACKAGE).as_posix(), c.lineno, c.value) for c in literals(tree) if c.value in names]
    return found


def test_no_flow_name_is_hard_coded_outside_the_names_modules() -> None:
    hits = [hit for hit in hard_coded(flow_names()) if (hit[0], hit[2]) not in ALLOWED]
    assert hits == [], "use the constants of the area's names.py instead: " + ", ".join(
        f"gzsb/{path}:{line} {value!r}" for path, line, value in hits
    )


def test_the_allow_list_has_no_stale_entries() -> None:
    used = {(path, value) for path, _, value in hard_coded(flow_names())}
    assert set(ALLOWED) <= used


def test_the_scan_finds_a_hard_coded_name(tmp_path: Path) -> None:
    tree = ast.parse('"""Doc: payment_pending."""\nSTEPS.register("create_order")\nif s == "payment_pending": pass\n')
    assert [c.lineno for c in literals(tree) if c.value in flow_names()] == [3]


# Templates name events (their buttons) and settings: each such name must be one an area
# declares, so that renaming it in the flow is refused instead of hiding the button.
TEMPLATE_ALLOWED = {
    ("templates/identity_result.html", "approved"): "a staff review decision, not the state",
    ("templates/pages/preferences.html", "preferences"): "the data key of the 志愿 section",
    ("templates/pages/confirm.html", "preferences"): "the data key of the 志愿 section",
}
QUOTED = re.compile(r"""(["'])([a-z_]+)\1""")


def template_names(names: set[str]) -> set[tuple[str, str]]:
    found = set()
    for path in sorted([*PACKAGE.glob("templates/**/*.html"), *PACKAGE.glob("static/*.js")]):
        relative = path.relative_to(PACKAGE).as_posix()
        for match in QUOTED.finditer(path.read_text(encoding="utf-8")):
            if match.group(2) in names:
                found.add((relative, match.group(2)))
    return found


def test_names_in_templates_are_declared_by_an_area() -> None:
    declared = {need.name for need in PRODUCT.needs}
    used = template_names(flow_names())
    undeclared = sorted(hit for hit in used if hit[1] not in declared and hit not in TEMPLATE_ALLOWED)
    assert undeclared == [], "declare these in the area's names.py"
    assert set(TEMPLATE_ALLOWED) <= used  # no stale entries
    assert ("templates/pages/identity.html", "upload_identity") in used  # the scan sees template names

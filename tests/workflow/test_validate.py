"""One bad flow per validation rule; each message names the file and the key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gzsb.app import create_app
from gzsb.bootstrap import registries
from gzsb.config import ROOT, TestConfig
from gzsb.errors import FlowError
from gzsb.workflow.validate import check_flow, check_flow_file

# Built without a Flask app. The fixtures are small flows, not the product's: the names the
# areas need are checked on the shipped flow here and in test_needs.py.
PRODUCT = registries(TestConfig)
SKETCH = PRODUCT.without_needs()

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BAD = FIXTURES / "bad_flows"

EXPECTED = {
    # structure (loader)
    "unknown_top_key": "(top): unknown key 'description'; known: flow, initial,",
    "unknown_transition_key": "transitions[0]: unknown key 'condition'; known: actors, event, from",
    "yaml11_on_key": "transitions[1]: unknown key 'on' (YAML 1.1 would read it as a boolean; quote it)",
    "yaml11_boolean_value": "states.approved.final: must be true or false",
    "missing_initial": "initial: required key is missing",
    "bad_duration": "timers[0].after: 'one day' is not a duration; write e.g. 90s, 30m, 24h or 7d",
    "window_without_zone": "windows.registration.opens: needs a zone",
    "duplicate_key": "line 9, column 3: not valid YAML: duplicate key 'pledged' (first at line 8)",
    "invalid_yaml": "line 8, column 10: not valid YAML",
    "bad_document_type": "materials.documents.discharge_certificate.types[0]: unknown type 'pdf'; known: jpeg, png",
    "bad_role": "transitions[1].actors[1]: unknown role 'god'; known: student, staff, admin, system",
    # names
    "unknown_initial": "initial: unknown state 'begin'; known: approved, pledged, started",
    "undefined_from": "transitions[1].from: unknown state 'pleged'; known: approved, pledged, started",
    "undefined_to": "transitions[1].to: unknown state 'aproved'; known: approved, pledged, started",
    "unknown_guard": "transitions[0].guards[0]: unknown guard 'paied'; known: attempts_left, face_consent_given,",
    "unknown_step": "transitions[0].step: unknown step 'pledgee'; known: appeal_freeze, basic_info,",
    "unknown_page": "states.pledged.page: unknown page 'basic_infos'; known: basic_info,",
    "unknown_stage": "states.started.stage: unknown stage 'basc'; known: basic",
    "unknown_window": "transitions[0].guards[0].window_open: unknown window 'registraton'; known: registration",
    "guard_wrong_arguments": "transitions[0].guards[0].attempts_left.max: Not a valid integer.",
    "guard_takes_no_arguments": "transitions[0].guards[0]: guard 'xueji_found' takes no arguments",
    "guard_needs_arguments": "transitions[0].guards[0]: guard 'window_open' needs arguments",
    "window_closes_before_opens": "windows.registration.closes: must be after opens",
    "notify_unknown_state": "notify.aproved: unknown state 'aproved'; known: approved, pledged, started",
    "notify_unknown_template": "notify.approved: unknown SMS template 'registration_done'; known: ",
    # graph
    "unreachable_state": "states.orphan: unreachable from the initial state 'started'",
    "dead_end": "states.stuck: dead end: not final and no transition leaves it",
    "trap": "states.loop_a: trap: no final state can be reached from it",
    "no_final_state": "states: no state is final",
    "duplicate_branch": "transitions[1]: duplicates transitions[0] (accept_pledge: started → pledged)",
    "unguarded_earlier_branch": "transitions[3]: branch can never be chosen: the earlier branch transitions[2]",
    "same_destination_branches": "transitions[1]: branches transitions[0] and transitions[1] of 'accept_pledge' both",
    "timer_unknown_state": "timers[0].in: unknown state 'paying'; known: approved, pledged, started",
    "unknown_document": "materials.categories.退役士兵[0]: unknown document 'discharge_certificat'; known: discharge",
    "timer_event_does_not_leave": "timers[0].event: 'accept_pledge' does not leave state 'pledged'",
}


def problems_of(path: Path) -> list[str]:
    with pytest.raises(FlowError) as failed:
        check_flow_file(path, SKETCH)
    return failed.value.problems


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(p.stem for p in BAD.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_flow_names_file_key_path_and_what_is_valid(name: str) -> None:
    problems = problems_of(BAD / f"{name}.yaml")
    assert all(line.startswith(f"{name}.yaml: ") for line in problems), problems
    assert any(EXPECTED[name] in line for line in problems), problems


def test_minimal_and_shipped_flows_are_valid() -> None:
    assert check_flow_file(FIXTURES / "minimal_flow.yaml", SKETCH).initial == "started"
    flow = check_flow_file(ROOT / "flows" / "enrollment.yaml", PRODUCT)
    assert flow.states[flow.initial].page == "pledge"


def test_every_problem_is_reported_at_once() -> None:
    text = (FIXTURES / "minimal_flow.yaml").read_text(encoding="utf-8")
    text = text.replace("initial: started", "initial: begin").replace("step: pledge", "step: nope")
    text = text.replace("registration_approved", "nothing")
    with pytest.raises(FlowError) as failed:
        check_flow(text, "three.yaml", SKETCH)
    paths = [line.split(": ")[1] for line in failed.value.problems]
    assert {"initial", "transitions[0].step", "notify.approved"} <= set(paths)


def test_cli_validate_exit_codes_and_output() -> None:
    runner = create_app(TestConfig).test_cli_runner()
    good = runner.invoke(args=["flow", "validate", str(ROOT / "flows" / "enrollment.yaml")])
    assert good.exit_code == 0 and "valid" in good.output
    bad = runner.invoke(args=["flow", "validate", str(BAD / "unknown_guard.yaml")])
    assert bad.exit_code == 1
    assert "unknown_guard.yaml: transitions[0].guards[0]: unknown guard 'paied'" in bad.output


def test_cli_validate_refuses_a_flow_lacking_a_name_an_area_needs(tmp_path: Path) -> None:
    text = (ROOT / "flows" / "enrollment.yaml").read_text(encoding="utf-8")
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(text.replace("payment_pending", "order_open"), encoding="utf-8")
    result = create_app(TestConfig).test_cli_runner().invoke(args=["flow", "validate", str(renamed)])
    assert result.exit_code == 1
    assert "renamed.yaml: states: state 'payment_pending' is needed by area 'payments'" in result.output
    assert "renamed.yaml: 1 problem(s); not valid" in result.output


def test_the_engine_is_validated_without_flask() -> None:
    # The validator is handed its registries: importing the engine must not pull in the web app.
    code = (
        "import sys\n"
        "from gzsb.workflow.needs import Needs\n"
        "from gzsb.workflow.registry import FlowRegistries, GuardRegistry, Registry, StepRegistry\n"
        "from gzsb.workflow.validate import check_flow\n"
        "empty = FlowRegistries(GuardRegistry('g'), StepRegistry('s'), Registry('p'), Registry('t'), Needs())\n"
        "try:\n"
        f"    check_flow(open({str(FIXTURES / 'minimal_flow.yaml')!r}, encoding='utf-8').read(), 'm.yaml', empty)\n"
        "except Exception as exc:\n"
        "    assert 'unknown g ' in str(exc.problems), exc\n"
        "sys.exit(3 if 'flask' in sys.modules else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_cli_graph_draws_svg(tmp_path: Path) -> None:
    runner = create_app(TestConfig).test_cli_runner()
    out = tmp_path / "flow.svg"
    result = runner.invoke(args=["flow", "graph", str(ROOT / "flows" / "enrollment.yaml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    svg = out.read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "阅读考试承诺书" in svg and "完成信息采集去身份认证" in svg

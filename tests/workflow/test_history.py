"""The hash-chained history under attack: every kind of tampering is caught, and the
first bad event is named exactly, by `verify_all`, by `flask audit verify` and offline
on an export. Also: what-if replay under another flow, and flow versions side by side."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gzsb.audit.service import verify_all
from gzsb.config import ROOT
from gzsb.extensions import db
from gzsb.models import Application, HistoryEvent
from gzsb.store import FLOWS, history_rows, publish
from gzsb.workflow.engine import Engine
from gzsb.workflow.history import EventRow, Verdict, canonical, event_hash, genesis_hash, utc_text
from gzsb.workflow.history_export import verify_export
from gzsb.workflow.history_replay import replay
from gzsb.workflow.loader import load_flow, load_flow_file
from gzsb.workflow.spec import FlowSpec
from tests.drive import application, chain, history, sql, to_approved, uid_of
from tests.support import (
    MATCHED,
    MISMATCHED,
    SYSTEM,
    Applicant,
    new_applicant,
    order_of,
    to_confirming,
    to_payment,
)

FLOW_FILE = ROOT / "flows" / "enrollment.yaml"
FLOW = load_flow_file(FLOW_FILE)


@dataclass
class Cast:
    """Three applicants: ``done`` (11 events, approved), ``paying`` (10 events,
    payment_pending) and ``bystander`` (5 events, confirming), who is never tampered with."""

    done: Applicant
    paying: Applicant
    bystander: Applicant

    def uid(self, who: str) -> str:
        return uid_of(getattr(self, who).application_id)

    def id(self, who: str) -> int:
        return getattr(self, who).application_id


@pytest.fixture
def cast(app: Flask, eng: Engine) -> Cast:
    done, paying, bystander = new_applicant(1), new_applicant(2), new_applicant(3)
    to_approved(eng, done)
    to_payment(eng, paying)
    to_confirming(eng, bystander)
    return Cast(done, paying, bystander)


@pytest.fixture
def fresh_flow_cache() -> Iterator[None]:
    # FLOWS caches parsed versions by id for the whole process; a test that publishes a
    # second version must not leave its version 2 behind for the next test's database.
    FLOWS._by_id.clear()
    yield
    FLOWS._by_id.clear()


def cli(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def verdicts() -> dict[str, Verdict]:
    return {v.application: v for v in verify_all(db.session)}


def assert_first_bad(app: Flask, cast: Cast, who: str, seq: int, problem: str) -> None:
    """verify_all and both CLI forms name ``seq`` for ``who``; everyone else verifies."""
    uid = cast.uid(who)
    found = verdicts()
    bad = found.pop(uid)
    assert not bad.ok and bad.bad_seq == seq, bad.describe()
    assert problem in bad.problem, bad.describe()
    assert len(found) == 2 and all(v.ok for v in found.values()), [v.describe() for v in found.values()]

    for args in (("audit", "verify"), ("audit", "verify", "--application", uid)):
        result = cli(app, *args)
        assert result.exit_code == 1, result.output
        assert f"application {uid}: FAILED at seq {seq}: " in result.output
        assert problem in result.output
    assert "verified 3 application(s)" in cli(app, "audit", "verify").output
    for other in ("done", "paying", "bystander"):
        if other != who:
            assert cli(app, "audit", "verify", "--application", cast.uid(other)).exit_code == 0


def test_untouched_histories_verify(app: Flask, cast: Cast) -> None:
    found = verdicts()
    assert [(v.ok, v.events, v.state) for v in found.values()] == [
        (True, 11, "approved"),
        (True, 10, "payment_pending"),
        (True, 5, "confirming"),
    ]
    result = cli(app, "audit", "verify")
    assert result.exit_code == 0, result.output
    assert "verified 3 application(s), 26 event(s): 0 failed" in result.output


# -- tampering with the database -------------------------------------------------------


def test_edited_payload_is_caught_at_that_event(app: Flask, cast: Cast) -> None:
    sql(
        "UPDATE history_events SET payload = :p WHERE application_id = :a AND seq = 5",
        p=canonical({"choices": [{"institution": "10055", "major": "080901"}]}),
        a=cast.id("done"),
    )
    assert_first_bad(app, cast, "done", 5, "hash does not match the event's content")


def test_edited_guard_results_are_caught_at_that_event(app: Flask, cast: Cast) -> None:
    sql(
        "UPDATE history_events SET guards = replace(guards, 'true', 'false') WHERE application_id = :a AND seq = 2",
        a=cast.id("paying"),
    )
    assert_first_bad(app, cast, "paying", 2, "hash does not match the event's content")


@pytest.mark.parametrize("seq", [1, 4, 9])
def test_deleted_event_is_named_as_missing(app: Flask, cast: Cast, seq: int) -> None:
    sql("DELETE FROM history_events WHERE application_id = :a AND seq = :s", a=cast.id("done"), s=seq)
    assert_first_bad(app, cast, "done", seq, f"event seq {seq} is missing")


def test_deleted_last_event_is_named_as_missing(app: Flask, cast: Cast) -> None:
    sql("DELETE FROM history_events WHERE application_id = :a AND seq = 11", a=cast.id("done"))
    assert_first_bad(app, cast, "done", 11, "history ends before the recorded head: event seq 11 is missing")


@pytest.mark.parametrize(("first", "second"), [(3, 7), (1, 2), (10, 11), (5, 6)])
def test_swapped_events_are_caught_at_the_earlier_seq(app: Flask, cast: Cast, first: int, second: int) -> None:
    # UNIQUE(application_id, seq): move one out of the way first.
    a = cast.id("done")
    sql("UPDATE history_events SET seq = -1 WHERE application_id = :a AND seq = :s", a=a, s=first)
    sql("UPDATE history_events SET seq = :t WHERE application_id = :a AND seq = :s", a=a, s=second, t=first)
    sql("UPDATE history_events SET seq = :t WHERE application_id = :a AND seq = -1", a=a, t=second)
    assert [e.seq for e in history(a)] == list(range(1, 12))
    assert_first_bad(app, cast, "done", first, "prev hash does not match the previous event")


def test_changed_state_column_is_caught_at_the_last_event(app: Flask, cast: Cast) -> None:
    sql("UPDATE applications SET state = 'approved' WHERE id = :a", a=cast.id("paying"))
    assert_first_bad(app, cast, "paying", 10, "application row says state 'approved'")


def test_changed_head_column_is_caught_after_the_last_event(app: Flask, cast: Cast) -> None:
    sql("UPDATE applications SET head = :h WHERE id = :a", h="0" * 64, a=cast.id("bystander"))
    # Indistinguishable from a deleted tail: the head promises an event after seq 5.
    assert_first_bad(app, cast, "bystander", 6, "history ends before the recorded head: event seq 6 is missing")


def test_head_rolled_back_names_the_first_event_after_it(app: Flask, cast: Cast) -> None:
    a = cast.id("done")
    eighth = history(a)[7]
    sql("UPDATE applications SET head = :h WHERE id = :a", h=eighth.hash, a=a)
    assert_first_bad(app, cast, "done", 9, "event seq 9 comes after the recorded head")


def _forge_payment(record: Application, seq: int) -> HistoryEvent:
    """A payment_succeeded event a forger computed with the public hash function."""
    order = order_of(record.id)
    payload = canonical(
        {"amount_fen": order["amount_fen"], "channel": "alipay", "order": order["number"], "trade_no": "F"}
    )
    guards = canonical([["materials_pending", [["materials_required", False]]], ["approved", []]])
    at = utc_text(FLOW.windows["registration"].opens)
    last = history(record.id)[-1]
    digest = event_hash(
        last.hash, record.uid, seq, "payment_succeeded", "payment_pending", "approved", "system:pay", "system",
        guards, payload, FLOW.sha256, at, "{}",
    )  # fmt: skip
    return HistoryEvent(
        application_id=record.id, seq=seq, event="payment_succeeded", from_state="payment_pending",
        to_state="approved", actor="system:pay", role="system", guards=guards, payload=payload,
        flow_sha256=FLOW.sha256, at=at, prev_hash=last.hash, hash=digest, changes="{}",
    )  # fmt: skip


def test_forged_event_at_the_end_without_head_is_named(app: Flask, cast: Cast) -> None:
    record = application(cast.id("paying"))
    db.session.add(_forge_payment(record, 11))
    db.session.commit()
    # The forged event is legal and hashes right: only the head gives it away.
    rows = list(history_rows(db.session, record.id))
    assert replay(record.uid, FLOW, rows).ok
    assert_first_bad(app, cast, "paying", 11, "event seq 11 comes after the recorded head")


def test_forged_event_with_head_but_old_state_is_named(app: Flask, cast: Cast) -> None:
    record = application(cast.id("paying"))
    forged = _forge_payment(record, 11)
    db.session.add(forged)
    db.session.commit()
    sql("UPDATE applications SET head = :h, seq = 11 WHERE id = :a", h=forged.hash, a=record.id)
    assert_first_bad(app, cast, "paying", 11, "application row says state 'payment_pending'")


def test_event_moved_to_another_application_is_caught(app: Flask, cast: Cast) -> None:
    # The uid is part of every hash: a copied event does not fit another chain.
    sql("DELETE FROM history_events WHERE application_id = :a AND seq = 5", a=cast.id("bystander"))
    sql(
        "INSERT INTO history_events (application_id, seq, event, from_state, to_state, actor, role, guards, payload,"
        " flow_sha256, at, prev_hash, hash) SELECT :b, seq, event, from_state, to_state, actor, role, guards,"
        " payload, flow_sha256, at, prev_hash, hash FROM history_events WHERE application_id = :a AND seq = 5",
        a=cast.id("done"),
        b=cast.id("bystander"),
    )
    assert_first_bad(app, cast, "bystander", 5, "prev hash does not match")


# -- exports, verified offline ----------------------------------------------------------


@pytest.fixture
def exported(app: Flask, cast: Cast, tmp_path: Path) -> Path:
    path = tmp_path / "done.jsonl"
    result = cli(app, "audit", "export", "--history-only", "--application", cast.uid("done"), "-o", str(path))
    assert result.exit_code == 0, result.output
    return path


def test_export_verifies_offline(app: Flask, cast: Cast, exported: Path) -> None:
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 12
    header = json.loads(lines[0])
    assert header["application"] == cast.uid("done") and header["state"] == "approved"
    assert header["flow_yaml"] == FLOW_FILE.read_text(encoding="utf-8")
    assert [json.loads(line)["seq"] for line in lines[1:]] == list(range(1, 12))
    result = cli(app, "audit", "verify", "--file", str(exported))
    assert result.exit_code == 0, result.output
    assert f"application {cast.uid('done')}: ok (11 events, state approved)" in result.output


def _replace_in_line(lines: list[str], index: int, old: str, new: str) -> None:
    assert old in lines[index], (old, lines[index][:200])
    lines[index] = lines[index].replace(old, new, 1)


def _flip_char(line: str, position: int) -> str:
    """One character replaced by another of its kind (hex stays hex, digit stays digit)."""
    c = line[position]
    if c.isdigit():
        repl = str((int(c) + 1) % 10)
    elif c in "abcdef":
        repl = "abcdef"[("abcdef".index(c) + 1) % 6]
    elif c.isascii() and c.isalpha():
        repl = "z" if c != "z" else "y"
    else:
        repl = "x"
    return line[:position] + repl + line[position + 1 :]


def _mutate_order_line(lines: list[str]) -> None:
    _replace_in_line(lines, 10, '"order":"GZSB', '"order":"GZSC')


def _mutate_payload_hmac(lines: list[str]) -> None:
    line = lines[2]
    at = line.index("hmac-sha256:") + len("hmac-sha256:") + 5
    lines[2] = _flip_char(line, at)


def _mutate_hash(lines: list[str]) -> None:
    line = lines[6]
    lines[6] = _flip_char(line, line.index('"hash":"') + 20)


def _mutate_prev(lines: list[str]) -> None:
    line = lines[3]
    lines[3] = _flip_char(line, line.index('"prev":"') + 30)


def _mutate_flow_setting(lines: list[str]) -> None:
    _replace_in_line(lines, 0, "fee_yuan: 160", "fee_yuan: 150")


def _mutate_flow_syntax(lines: list[str]) -> None:
    # No longer even valid YAML: caught by the hash before it is parsed.
    _replace_in_line(lines, 0, "initial: started", "initial: [started")


def _mutate_header_state(lines: list[str]) -> None:
    _replace_in_line(lines, 0, '"state":"approved"', '"state":"approvee"')


def _mutate_header_head(lines: list[str]) -> None:
    line = lines[0]
    lines[0] = _flip_char(line, line.index('"head":"') + 9)


def _mutate_answer(lines: list[str]) -> None:
    _replace_in_line(lines, 4, '"answer":"correct"', '"answer":"corrext"')


def _mutate_seq(lines: list[str]) -> None:
    _replace_in_line(lines, 8, '"seq":8', '"seq":9')


def _mutate_role(lines: list[str]) -> None:
    _replace_in_line(lines, 7, '"role":"student"', '"role":"studenx"')


def _broken_json(lines: list[str]) -> None:
    _replace_in_line(lines, 5, '"seq":5,', '"seq":5;')


def _not_canonical(lines: list[str]) -> None:
    _replace_in_line(lines, 7, '"seq":7,', '"seq": 7,')


def _delete_middle_line(lines: list[str]) -> None:
    del lines[5]


def _delete_last_line(lines: list[str]) -> None:
    del lines[11]


def _delete_header(lines: list[str]) -> None:
    del lines[0]


def _swap_lines(lines: list[str]) -> None:
    lines[3], lines[4] = lines[4], lines[3]


def _swap_header(lines: list[str]) -> None:
    lines[0], lines[1] = lines[1], lines[0]


def _duplicate_line(lines: list[str]) -> None:
    lines.insert(4, lines[3])


@pytest.mark.parametrize(
    ("mutate", "seq", "problem"),
    [
        (_mutate_order_line, 10, "hash does not match"),
        (_mutate_payload_hmac, 2, "hash does not match"),
        (_mutate_answer, 4, "hash does not match"),
        (_mutate_role, 7, "hash does not match"),
        (_mutate_hash, 6, "hash does not match"),
        (_mutate_prev, 3, "prev hash does not match"),
        (_mutate_seq, 8, "event seq 8 is missing (found seq 9)"),
        (_mutate_flow_setting, 0, "does not match its SHA-256"),
        (_mutate_flow_syntax, 0, "does not match its SHA-256"),
        (_mutate_header_state, 11, "application row says state 'approvee'"),
        (_mutate_header_head, 12, "event seq 12 is missing"),
        (_broken_json, 5, "line 6 is not a history event"),
        (_not_canonical, 7, "line 8 is not in canonical form"),
        (_delete_middle_line, 5, "event seq 5 is missing"),
        (_delete_last_line, 11, "event seq 11 is missing"),
        (_delete_header, 0, "not a canonical gzsb-history/1 header"),
        (_swap_lines, 3, "event seq 3 is missing (found seq 4)"),
        (_swap_header, 0, "not a canonical gzsb-history/1 header"),
        (_duplicate_line, 4, "event seq 4 is missing (found seq 3)"),
    ],
)
def test_tampered_export_fails_at_the_first_bad_event(
    app: Flask, cast: Cast, exported: Path, mutate: Callable[[list[str]], None], seq: int, problem: str
) -> None:
    lines = exported.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    body = lines[:-1]
    mutate(body)
    exported.write_text("\n".join(body) + "\n", encoding="utf-8")
    result = cli(app, "audit", "verify", "--file", str(exported))
    assert result.exit_code == 1, result.output
    assert f"FAILED at seq {seq}: " in result.output, result.output
    assert problem in result.output, result.output


def _invalid_utf8(exported: Path) -> None:
    data = bytearray(exported.read_bytes())
    data[data.index("天".encode()) + 1] = 0xFF
    exported.write_bytes(bytes(data))


def test_export_with_a_byte_that_breaks_utf8_fails(app: Flask, cast: Cast, exported: Path) -> None:
    _invalid_utf8(exported)
    assert cli(app, "audit", "verify", "--file", str(exported)).exit_code == 1


def test_export_with_a_byte_that_breaks_utf8_is_reported(app: Flask, cast: Cast, exported: Path) -> None:
    _invalid_utf8(exported)
    result = cli(app, "audit", "verify", "--file", str(exported))
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1
    assert "FAILED" in result.output


def test_every_single_character_change_is_caught(cast: Cast, exported: Path) -> None:
    """Replace each character of the export in turn (in the header: every 7th one):
    each variant fails offline verification. The flow text is cached: all but the
    header mutations keep it intact, so it is parsed once."""
    text = exported.read_text(encoding="utf-8")

    @functools.cache
    def loader(flow_text: str, source: str) -> FlowSpec:
        return load_flow(flow_text, source)

    assert verify_export(text.splitlines(keepends=True), loader).ok
    header_end = text.index("\n")
    # flow_source is a label, covered by no hash: only what is verified is mutated.
    label = text.index('"flow_source":"')
    label_end = text.index('"', label + len('"flow_source":"'))
    checked = 0
    for position in range(len(text)):
        if label <= position <= label_end or (position < header_end and position % 7):
            continue
        mutated = _flip_char(text, position)
        verdict = verify_export(mutated.splitlines(keepends=True), loader)
        assert not verdict.ok, (position, text[max(position - 20, 0) : position + 20])
        checked += 1
    assert checked > 3000


# -- what-if replay under another flow --------------------------------------------------


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = FLOW_FILE.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / "other.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


CONFIRM_XUEJI = """  - event: confirm_xueji
    from: preferences
    to: preferences
    actors: [student]
    label: 信息正确
    step: xueji_confirm
    guards: [xueji_found]
"""
CREATE_ORDER_ROLES = """  - event: create_order
    from: identity_verified
    to: payment_pending
    actors: [student]"""


@pytest.mark.parametrize(
    ("old", "new", "seq", "problem"),
    [
        (CONFIRM_XUEJI, "", 4, "'confirm_xueji' does not lead from 'preferences' to 'preferences'"),
        (CREATE_ORDER_ROLES, CREATE_ORDER_ROLES.replace("[student]", "[staff]"), 10, "role 'student' may not fire"),
        ("    to: approved\n    actors: [system]\n", "    to: approved\n    actors: [admin]\n", 11, "role 'system'"),
    ],
    ids=["without_confirm_xueji", "create_order_by_staff", "payment_by_admin"],
)
def test_replay_under_another_flow_names_where_it_stops_being_legal(
    app: Flask, cast: Cast, tmp_path: Path, old: str, new: str, seq: int, problem: str
) -> None:
    other = _variant(tmp_path, old, new)
    uid = cast.uid("done")
    result = cli(app, "audit", "replay", "--application", uid, "--flow", str(other))
    assert result.exit_code == 1, result.output
    assert f"application {uid}: stops being legal under other.yaml at seq {seq}: " in result.output
    assert problem in result.output
    # The real history itself is untouched and fine.
    assert cli(app, "audit", "verify", "--application", uid).exit_code == 0


def test_replay_under_its_own_flow_is_all_legal(app: Flask, cast: Cast, tmp_path: Path) -> None:
    for who, count in (("done", 11), ("paying", 10), ("bystander", 5)):
        result = cli(app, "audit", "replay", "--application", cast.uid(who), "--flow", str(FLOW_FILE))
        assert result.exit_code == 0, result.output
        assert f"all {count} events are legal under enrollment.yaml" in result.output
    # A cosmetic change (other hash, same rules) keeps every event legal: the chain is not checked.
    other = _variant(tmp_path, "title: 天津市高职升本网上报名", "title: 天津市高职升本网上报名（补报名）")
    assert cli(app, "audit", "replay", "--application", cast.uid("done"), "--flow", str(other)).exit_code == 0


# -- replay() on synthetic histories ----------------------------------------------------

UID = "0123456789abcdef0123456789abcdef"
PLEDGE = ("accept_pledge", "started", "pledged", "student", None, {"agree": True})
BASIC = ("submit_basic_info", "pledged", "preferences", "student", None, {"name": "hmac-sha256:x"})
CHECK = ("check_xueji", "preferences", "preferences", "student", None, {"result": "found"})
CONFIRM = ("confirm_xueji", "preferences", "preferences", "student", None, {"answer": "correct"})
PREFS = ("submit_preferences", "preferences", "confirming", "student", None, {"choices": []})
INFO = ("confirm_info", "confirming", "identity_pending", "student", None, {})
CONSENTED = ("give_face_consent", "identity_pending", "identity_pending", "student", None, {"agree": True})
UPLOADED = ("upload_identity", "identity_pending", "face_checking", "student", None, {"photo": "p1", "id_card": "c1"})
TO_CHECKING = [PLEDGE, BASIC, CHECK, CONFIRM, PREFS, INFO, CONSENTED, UPLOADED]
ATTEMPTS = 'attempts_left({"counter": "face", "max": 3})'


def test_synthetic_history_replays() -> None:
    rows = chain(UID, FLOW, TO_CHECKING)
    verdict = replay(UID, FLOW, rows, head=rows[-1].hash, state="face_checking")
    assert verdict.ok and verdict.events == 8 and verdict.state == "face_checking", verdict.describe()
    empty = replay(UID, FLOW, [], head=genesis_hash(UID, FLOW.sha256), state="started")
    assert empty.ok and empty.events == 0


def test_replay_names_the_missing_seq_in_a_gap() -> None:
    rows = chain(UID, FLOW, TO_CHECKING)
    verdict = replay(UID, FLOW, rows[:3] + rows[4:])
    assert (verdict.ok, verdict.bad_seq) == (False, 4)
    assert "event seq 4 is missing (found seq 5)" in verdict.problem
    assert f"application {UID}: FAILED at seq 4: " in verdict.describe()
    # Without the chain check the gap is still found.
    assert replay(UID, FLOW, rows[:3] + rows[4:], check_chain=False).bad_seq == 4


def test_replay_refuses_a_role_the_flow_does_not_allow() -> None:
    staff_pledge = ("accept_pledge", "started", "pledged", "staff", None, {"agree": True})
    verdict = replay(UID, FLOW, chain(UID, FLOW, [staff_pledge, BASIC]))
    assert verdict.bad_seq == 1 and "role 'staff' may not fire 'accept_pledge' (allowed: student)" in verdict.problem
    student_match = ("face_matched", "face_checking", "identity_verified", "student", None, MATCHED)
    verdict = replay(UID, FLOW, chain(UID, FLOW, [*TO_CHECKING, student_match]))
    assert verdict.bad_seq == 9 and "role 'student' may not fire 'face_matched'" in verdict.problem


def test_replay_refuses_a_move_the_flow_does_not_have() -> None:
    skip = ("submit_preferences", "pledged", "confirming", "student", None, {})
    verdict = replay(UID, FLOW, chain(UID, FLOW, [PLEDGE, skip]))
    assert verdict.bad_seq == 2 and "'submit_preferences' does not lead from 'pledged'" in verdict.problem
    wrong_from = ("submit_basic_info", "started", "preferences", "student", None, {})
    verdict = replay(UID, FLOW, chain(UID, FLOW, [PLEDGE, wrong_from]))
    assert verdict.bad_seq == 2 and "starts from 'started' but the application was in 'pledged'" in verdict.problem


@pytest.mark.parametrize(
    ("guards", "problem"),
    [
        # The first branch passed, yet the event went to the second branch's state.
        ([["identity_pending", [[ATTEMPTS, True]]], ["manual_identity", []]], "an earlier branch"),
        ([["identity_pending", [[ATTEMPTS, True]]]], "do not let branch to 'manual_identity' win"),
        ([["manual_identity", []]], "do not follow the flow's branch order"),
        ([["identity_pending", [[ATTEMPTS, False]]], ["manual_identity", [["x", False]]]], "do not let branch"),
        ([], "no guard results recorded"),
        ([["identity_pending"]], "malformed"),
    ],
)
def test_replay_refuses_guard_results_inconsistent_with_the_branch(guards: Any, problem: str) -> None:
    mismatch = ("face_mismatch", "face_checking", "manual_identity", "system", guards, MISMATCHED)
    rows = chain(UID, FLOW, [*TO_CHECKING, mismatch])
    verdict = replay(UID, FLOW, rows, head=rows[-1].hash, state="manual_identity")
    assert verdict.bad_seq == 9 and problem in verdict.problem, verdict.describe()
    # The consistent record of the same move: first branch refused, second taken.
    fine = [["identity_pending", [[ATTEMPTS, False]]], ["manual_identity", []]]
    rows = chain(UID, FLOW, [*TO_CHECKING, mismatch[:4] + (fine, MISMATCHED)])
    assert replay(UID, FLOW, rows, head=rows[-1].hash, state="manual_identity").ok
    # Guard checks can be switched off (a what-if under a flow with other guards).
    assert replay(UID, FLOW, chain(UID, FLOW, [*TO_CHECKING, mismatch]), check_guards=False).ok


def test_replay_checks_the_chain_of_synthetic_rows() -> None:
    rows = chain(UID, FLOW, TO_CHECKING)
    edited = rows[:2] + [EventRow(**{**rows[2].__dict__, "payload": canonical({"result": "not_found"})})] + rows[3:]
    assert replay(UID, FLOW, edited).bad_seq == 3
    assert replay(UID, FLOW, edited, check_chain=False).ok
    other_uid = replay("f" * 32, FLOW, rows)
    assert other_uid.bad_seq == 1 and "prev hash" in other_uid.problem
    head_behind = replay(UID, FLOW, rows, head=rows[4].hash)
    assert head_behind.bad_seq == 6 and "comes after the recorded head" in head_behind.problem
    head_at_genesis = replay(UID, FLOW, rows, head=genesis_hash(UID, FLOW.sha256))
    assert head_at_genesis.bad_seq == 1


# -- two flow versions side by side -----------------------------------------------------


def test_applications_verify_under_their_own_flow_version(app: Flask, eng: Engine, fresh_flow_cache: None) -> None:
    old = new_applicant(1)
    to_payment(eng, old)
    text = FLOW_FILE.read_text(encoding="utf-8")
    second = text.replace("title: 天津市高职升本网上报名", "title: 天津市高职升本网上报名（第二版）").replace(
        "fee_yuan: 160", "fee_yuan: 200"
    )
    version2, created = publish(db.session, load_flow(second, "enrollment-v2.yaml"), "test")
    assert created
    new = new_applicant(2)
    to_payment(eng, new)
    old_record, new_record = application(old.application_id), application(new.application_id)
    assert old_record.flow_version_id != new_record.flow_version_id == version2.id
    # Each ran under its own settings: the fee of the version it started on.
    assert order_of(old_record.id)["amount_fen"] == 16000
    assert order_of(new_record.id)["amount_fen"] == 20000
    # The old one keeps its version for the rest of its life.
    eng.fire(old.application_id, "payment_expired", SYSTEM, {})
    eng.fire(old.application_id, "create_order", old.actor, {})
    assert order_of(old.application_id)["amount_fen"] == 16000

    found = verdicts()
    assert all(v.ok for v in found.values()), [v.describe() for v in found.values()]
    assert {found[old_record.uid].events, found[new_record.uid].events} == {10, 12}
    assert {e.flow_sha256 for e in history(old.application_id)} == {FLOW.sha256}
    assert {e.flow_sha256 for e in history(new.application_id)} == {version2.sha256}
    result = cli(app, "audit", "verify")
    assert result.exit_code == 0 and "2 application(s), 22 event(s): 0 failed" in result.output, result.output

    # Under the other version the chain does not fit (the genesis binds the version).
    flow2 = FLOWS.by_version(db.session, version2.id)
    crossed = replay(old_record.uid, flow2, list(history_rows(db.session, old_record.id)))
    assert crossed.bad_seq == 1 and not crossed.ok
    # ... while the rules themselves are the same, so a what-if replay is all legal.
    assert replay(old_record.uid, flow2, list(history_rows(db.session, old_record.id)), check_chain=False).ok
    # Tampering with the new one is still named, the old one still verifies.
    sql("DELETE FROM history_events WHERE application_id = :a AND seq = 3", a=new.application_id)
    found = verdicts()
    assert found[old_record.uid].ok and found[new_record.uid].bad_seq == 3

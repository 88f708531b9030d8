"""The auditor console (issue 12): fleet view, find, timeline, diagram, verify, what-if, export,
and that only auditors reach any of it."""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta
from typing import Any

import pytest
import yaml
from flask import Flask
from sqlalchemy import func, select

from gzsb.accounts.service import create_account
from gzsb.audit import console
from gzsb.audit.bundle import verify_bundle
from gzsb.bootstrap import vault
from gzsb.cli.demo import demo_student, id_number
from gzsb.extensions import db
from gzsb.models import Account, Application, AuditRun, FlowVersion, HistoryEvent, RegistrationForm
from gzsb.regform.service import ensure_form
from gzsb.store import publish
from gzsb.workflow.checkpoint import Signer
from gzsb.workflow.loader import load_flow
from gzsb.workflow.witness import init_witness
from tests.audit.test_tamper import rechain
from tests.audit.test_whatif import not_found_student
from tests.drive import flow_of, history, sql, to_approved, uid_of
from tests.review_support import make_staff
from tests.support import PASSWORD_HASH, csrf_token, log_in, log_in_student, to_confirming

AUDITOR_ID = id_number("12010419800103003")
ADMIN_ID = id_number("12010419800102002")


def _account(role: str, number: str, name: str) -> Account:
    account = create_account(db.session, vault(), name=name, id_number=number, password_hash=PASSWORD_HASH, role=role)
    db.session.commit()
    return account


@pytest.fixture
def auditor(app: Flask) -> Any:
    """A client logged in as an auditor."""
    _account("auditor", AUDITOR_ID, "审计员")
    client = app.test_client()
    log_in(client, AUDITOR_ID)
    return client


@pytest.fixture
def approved(app: Flask, eng: Any, make_applicant: Any) -> Any:
    """A 普通 applicant driven through the engine to 报名完成 (eleven events), serial assigned."""
    who = make_applicant()
    to_approved(eng, who)
    record = db.session.get(Application, who.application_id)
    ensure_form(db.session, record, eng.clock())
    return who


def page(client: Any, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code)
    return response.get_data(as_text=True)


def post(client: Any, path: str, data: dict[str, str] | None = None) -> Any:
    token = csrf_token(client, "/audit/")
    return client.post(path, data={"csrf_token": token, **(data or {})})


def serial_of(who: Any) -> str:
    return db.session.query(RegistrationForm.serial).filter_by(application_id=who.application_id).scalar()


def fullwidth(text: str) -> str:
    """What a Chinese input method types: full-width digits, letters and dashes."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# ------------------------------------------------------------------------------ fleet


def test_home_counts_applications_events_and_states(auditor, approved, eng, make_applicant) -> None:
    other = make_applicant()
    to_confirming(eng, other)
    text = page(auditor, "/audit/")
    assert re.search(r'id="fleet-applications">2<', text)
    events = len(history(approved.application_id)) + len(history(other.application_id))
    assert re.search(rf'id="fleet-events">{events}<', text)
    assert "报名完成" in text and "信息确认" in text
    assert "尚未生成检查点" in text
    assert re.search(r'id="log-size">0<', text) and re.search(rf'id="log-unlogged">{events}<', text)


def test_a_checkpoint_on_demand_and_the_witness_status(auditor, approved, app, tmp_path) -> None:
    events = len(history(approved.application_id))
    versions = db.session.scalar(select(func.count()).select_from(FlowVersion))
    response = post(auditor, "/audit/checkpoint")
    assert response.status_code == 302 and response.headers["Location"].endswith("#checkpoint")
    text = page(auditor, "/audit/")
    size = events + versions
    assert re.search(rf'id="checkpoint-size">{size}<', text) and re.search(r'id="log-unlogged">0<', text)
    assert "尚未联署" in text and "尚未生成检查点" not in text
    signer = Signer.parse(app.config["LOG_SIGNING_KEY"])
    assert signer.name in text

    witness_dir = tmp_path / "witness"
    init_witness(witness_dir, "kaoshiyuan.example/witness")
    assert app.test_cli_runner().invoke(args=["audit", "witness", "--dir", str(witness_dir)]).exit_code == 0
    witness = re.search(r'id="checkpoint-witness">(.*?)</dd>', page(auditor, "/audit/"), re.S).group(1)
    assert "已联署（kaoshiyuan.example/witness" in witness


def test_fleet_verify_names_the_failed_application_and_seq(auditor, approved, eng, make_applicant) -> None:
    clean = make_applicant()
    to_confirming(eng, clean)
    response = post(auditor, "/audit/verify")
    assert response.status_code == 302 and response.headers["Location"].startswith("/audit/")
    text = page(auditor, "/audit/")
    assert "已校验 2 份报名" in text and "全部通过" in text

    sql(
        "UPDATE history_events SET actor = 'account:666' WHERE application_id = :a AND seq = 4",
        a=approved.application_id,
    )
    post(auditor, "/audit/verify")
    text = page(auditor, "/audit/")
    latest = text[text.index('id="run-2"') : text.index('id="run-1"')]
    assert "1 份未通过" in latest
    row = re.search(r"<tr><td data-label=\"报名\">.*?</tr>", latest, re.S)
    assert row is not None
    assert uid_of(approved.application_id) in row.group(0)
    assert uid_of(clean.application_id) not in latest
    assert ">4</td>" in row.group(0) and "事件内容与其哈希不符" in row.group(0)


def test_large_fleets_are_verified_in_the_background_with_progress(app, auditor, approved, monkeypatch) -> None:
    monkeypatch.setattr(console, "INLINE_EVENTS", 0)  # every fleet counts as large
    sql("UPDATE history_events SET at = '2026-12-01T03:00:00.000000Z' WHERE application_id = :a AND seq = 2",
        a=approved.application_id)  # fmt: skip
    response = post(auditor, "/audit/verify")
    assert response.status_code == 302
    for _ in range(300):
        db.session.expire_all()
        run = db.session.scalars(select(AuditRun).order_by(AuditRun.id.desc())).first()
        if run is not None and run.finished_at is not None:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the background verify did not finish")
    text = page(auditor, "/audit/")
    assert "1 份未通过" in text and "进行中" not in text and 'http-equiv="refresh"' not in text
    assert run.applications == 1 and not run.ok and "FAILED at seq 2" in run.problems[0]


def test_one_verify_run_at_a_time_across_app_nodes(app, approved, clock) -> None:
    # Runs live in the database: a run started by one node blocks a second one on any node.
    first, started = console.start_run(db.session, clock())
    again, started_again = console.start_run(db.session, clock())
    assert started and not started_again
    assert console.running(db.session, clock()) is not None
    console.run_verify(first)
    second, started = console.start_run(db.session, clock())
    assert started and second.run is not None and first.run is not None and second.run.id == first.run.id + 1
    console.run_verify(second)
    runs = console.runs(db.session)
    assert [r.number for r in runs] == [second.run.id, first.run.id] and all(r.ok and r.done for r in runs)
    # A run whose process died long ago does not block for ever.
    stale, _ = console.start_run(db.session, clock())
    assert console.start_run(db.session, clock() + console.RUN_STALE + timedelta(minutes=1))[1]
    assert stale.run is not None and stale.run.finished_at is None


# ------------------------------------------------------------------------------- find


def test_find_by_serial_also_typed_full_width(auditor, approved) -> None:
    uid = uid_of(approved.application_id)
    serial = serial_of(approved)
    assert re.match(r"^\d{4}-NK01-\d{6}$", serial)
    for typed in (serial, f"  {serial.lower()} ", fullwidth(serial)):
        response = post(auditor, "/audit/find", {"q": typed})
        assert response.status_code == 302, typed
        assert response.headers["Location"] == f"/audit/applications/{uid}"


def test_find_by_id_number_through_the_blind_index(auditor, approved) -> None:
    uid = uid_of(approved.application_id)
    number = demo_student(approved.index).id_number
    for typed in (number, f"{number[:6]} {number[6:14]} {number[14:]}", fullwidth(number)):
        response = post(auditor, "/audit/find", {"q": typed})
        assert response.status_code == 302, typed
        assert response.headers["Location"] == f"/audit/applications/{uid}"


def test_unknown_or_wrong_queries_get_a_chinese_message_and_leak_nothing(auditor, approved) -> None:
    unknown = id_number("11010119900307001")  # a valid ID number nobody registered with
    response = post(auditor, "/audit/find", {"q": unknown})
    text = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "未找到对应的报名记录" in text and unknown not in text

    serial = serial_of(approved)
    response = post(auditor, "/audit/find", {"q": serial[:-1] + ("9" if serial[-1] != "9" else "8")})
    assert response.status_code == 404 and "未找到对应的报名记录" in response.get_data(as_text=True)

    # A staff member's ID number: an account, but no application.
    response = post(auditor, "/audit/find", {"q": AUDITOR_ID})
    assert response.status_code == 404

    for wrong, message in (("12345", "身份证号应为18位"), ("2027-NK01-12", "请输入报名序号"), ("<script>", "")):
        response = post(auditor, "/audit/find", {"q": wrong})
        text = response.get_data(as_text=True)
        assert response.status_code == 422, wrong
        assert message in text and "<script>" not in text

    number = demo_student(approved.index).id_number
    bad_check = number[:17] + ("0" if number[17] != "0" else "1")
    response = post(auditor, "/audit/find", {"q": bad_check})
    assert response.status_code == 422 and "校验位" in response.get_data(as_text=True)
    assert bad_check not in response.get_data(as_text=True)


# --------------------------------------------------------------------------- timeline


def test_timeline_in_order_with_guards_and_no_clear_personal_data(auditor, approved) -> None:
    uid = uid_of(approved.application_id)
    text = page(auditor, f"/audit/applications/{uid}")
    student = demo_student(approved.index)
    assert student.id_number not in text and student.mobile not in text
    assert student.name not in text
    assert student.id_number[:6] + "********" + student.id_number[-4:] in text
    assert serial_of(approved) in text and "报名完成" in text

    positions = [text.index(f'id="seq-{n}"') for n in range(1, 12)]
    assert positions == sorted(positions)
    assert 'id="seq-12"' not in text
    rows = history(approved.application_id)
    first = text[positions[0] : positions[1]]
    assert "我遵守" in first and "阅读考试承诺书 → 填写基本信息" in first
    assert "✓ <code>window_open(registration)</code>" in first
    assert rows[0].hash[:16] in first
    fifth = text[positions[4] : positions[5]]
    assert "完成报名" in fifth and "✓ <code>xueji_checked</code>" in fifth
    # The payment branch to 上传审核 was refused by its guard, the one to 报名完成 won.
    last = text[positions[10] :]
    assert "✗ <code>materials_required</code>" in last and "上传审核材料" in last
    assert "系统" in last and "考生" in first


def test_diagram_draws_the_applicants_path(auditor, approved) -> None:
    uid = uid_of(approved.application_id)
    response = auditor.get(f"/audit/applications/{uid}/flow.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert "script-src" not in response.headers["Content-Security-Policy"]
    svg = response.get_data(as_text=True)
    assert "<svg" in svg and "<script" not in svg
    highlighted = set()
    for title, body in re.findall(r'<g id="edge\d+" class="edge">\s*<title>(.*?)</title>(.*?)</g>', svg, re.S):
        source, _, dest = html.unescape(title).partition("->")
        if 'stroke="#b00020"' in body:
            highlighted.add((source, dest))
    path = {(e.from_state, e.to_state) for e in history(approved.application_id)}
    assert highlighted == path
    assert ("materials_review", "approved") not in highlighted
    text = page(auditor, f"/audit/applications/{uid}")
    assert f'src="/audit/applications/{uid}/flow.svg"' in text


# ----------------------------------------------------------------------------- verify


def test_verify_ok_then_failed_at_the_tampered_seq(auditor, approved) -> None:
    uid = uid_of(approved.application_id)
    text = post(auditor, f"/audit/applications/{uid}/verify").get_data(as_text=True)
    assert "校验通过：11 个事件" in text and "尚无检查点" in text

    sql(
        "UPDATE history_events SET payload = :p WHERE application_id = :a AND seq = 5",
        p='{"choices":[{"institution":"99999","major":"080901"}]}',
        a=approved.application_id,
    )
    response = post(auditor, f"/audit/applications/{uid}/verify")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "校验未通过：第 5 个事件" in text and "FAILED at seq 5" in text
    assert "校验通过" not in text


def test_a_rewritten_and_rechained_event_is_named_by_its_tree_index(auditor, approved) -> None:
    uid = uid_of(approved.application_id)
    post(auditor, "/audit/checkpoint")
    text = post(auditor, f"/audit/applications/{uid}/verify").get_data(as_text=True)
    assert "11 个事件均已证明包含在树大小为" in text
    index = db.session.scalar(
        select(HistoryEvent.log_index).where(HistoryEvent.application_id == approved.application_id,
                                             HistoryEvent.seq == 5)
    )  # fmt: skip
    assert index is not None
    timeline = page(auditor, f"/audit/applications/{uid}")
    fifth = timeline[timeline.index('id="seq-5"') : timeline.index('id="seq-6"')]
    assert f'树索引 <span class="tree-index">{index}</span>' in fifth

    # The attacker's rewrite: a new first 志愿, every later hash and the head recomputed.
    sql("UPDATE history_events SET payload = replace(payload, '10060', '99999') WHERE application_id = :a AND seq = 5",
        a=approved.application_id)  # fmt: skip
    rechain(approved.application_id, 5)
    text = post(auditor, f"/audit/applications/{uid}/verify").get_data(as_text=True)
    log_verdict = re.search(r'id="log-verdict">(.*?)</ul>', text, re.S).group(1)
    assert f"树索引 {index}（第 5 个事件）" in log_verdict and "均已证明" not in text

    post(auditor, "/audit/verify")
    home = page(auditor, "/audit/")
    assert "透明日志问题" in home
    assert re.search(rf'<td data-label="树索引" class="tree-index">{index}</td>', home)
    assert "事件与透明日志中记录的叶子不符" in home


def test_verify_of_an_unknown_application_is_a_404(auditor) -> None:
    response = post(auditor, "/audit/applications/" + "f" * 32 + "/verify")
    assert response.status_code == 404 and "未找到" in response.get_data(as_text=True)


# ---------------------------------------------------------------------------- what-if


def _publish_variant(app_id: int, change: Any) -> int:
    raw = yaml.safe_load(flow_of(app_id).text)
    change(raw)
    raw["title"] = raw["title"] + "（修订）"
    flow = load_flow(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), "variant.yaml")
    row, created = publish(db.session, flow, "test")
    assert created
    return row.id


def _without_face_checking(raw: dict[str, Any]) -> None:
    del raw["states"]["face_checking"]
    raw["transitions"] = [t for t in raw["transitions"] if "face_checking" not in (t["from"], t["to"])]


def test_what_if_shows_where_a_flow_without_a_state_stops_being_legal(auditor, approved) -> None:
    uid = uid_of(approved.application_id)
    version = _publish_variant(approved.application_id, _without_face_checking)
    text = page(auditor, f"/audit/applications/{uid}")
    assert f'<option value="{version}"' in text
    own = db.session.get(Application, approved.application_id).flow_version_id
    assert f'<option value="{own}"' not in text

    text = page(auditor, f"/audit/applications/{uid}/whatif?version={version}")
    assert "从第 8 个事件起不再合法" in text
    rows = {int(n): body for n, body in re.findall(r'<tr class="\w+" id="whatif-(\d+)">(.*?)</tr>', text, re.S)}
    assert sorted(rows) == list(range(1, 12))
    assert all("合法" in rows[n] and "不合法" not in rows[n] for n in range(1, 8))
    assert "不合法" in rows[8] and "人脸比对中" in rows[8]
    assert "不合法" in rows[9]  # face_matched leaves the removed state
    assert "不合法" not in rows[10]  # create_order still exists


def test_what_if_reports_a_guard_the_other_flow_adds_that_was_not_checked_then(auditor, approved) -> None:
    uid = uid_of(approved.application_id)
    version = _publish_variant(approved.application_id, _stricter)
    text = page(auditor, f"/audit/applications/{uid}/whatif?version={version}")
    assert "全部 11 个事件仍然合法" in text and "1 个事件有当时未检查的条件" in text
    fifth = re.search(r'id="whatif-5">(.*?)</tr>', text, re.S).group(1)
    assert "<code>xueji_found</code>（重新求值：通过）" in fifth and "xueji_found: passes" in fifth


def _stricter(raw: dict[str, Any]) -> None:
    for t in raw["transitions"]:
        if t["event"] == "submit_preferences":
            t["guards"] = [*t["guards"], "xueji_found"]


def test_what_if_re_evaluates_the_new_guard_and_refuses_a_student_whose_xueji_was_not_found(app, auditor, eng) -> None:
    uid = not_found_student(eng)
    app_id = db.session.scalar(select(Application.id).where(Application.uid == uid))
    version = _publish_variant(app_id, _stricter)
    text = page(auditor, f"/audit/applications/{uid}/whatif?version={version}")
    assert "从第 4 个事件起不再合法" in text
    fourth = re.search(r'<tr class="refused" id="whatif-4">(.*?)</tr>', text, re.S).group(1)
    assert "完成报名" in fourth and "条件不满足" in fourth
    assert "<code>xueji_found</code>（重新求值：不通过）" in fourth and "xueji_found: would be refused: " in fourth


def test_what_if_needs_an_existing_version(auditor, approved) -> None:
    uid = uid_of(approved.application_id)
    assert "所选流程版本不存在" in page(auditor, f"/audit/applications/{uid}/whatif?version=999", 404)
    page(auditor, f"/audit/applications/{uid}/whatif", 404)


# ----------------------------------------------------------------------------- export


def test_export_downloads_the_bundle_and_it_verifies_offline(app, auditor, approved) -> None:
    uid = uid_of(approved.application_id)
    post(auditor, "/audit/checkpoint")
    response = auditor.get(f"/audit/applications/{uid}/export")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="gzsb-bundle-{uid}.json"'
    text = response.get_data(as_text=True)
    key = Signer.parse(app.config["LOG_SIGNING_KEY"]).verifier()
    result = verify_bundle(text, load_flow, key, origin=key.name)
    assert result.ok and result.verdict.events == 11 and result.proven == 11, result.describe()
    tampered = text.replace('\\"role\\":\\"student\\"', '\\"role\\":\\"staff\\"', 1)
    assert tampered != text and not verify_bundle(tampered, load_flow, key, origin=key.name).ok


# ----------------------------------------------------------------------------- access


def _audit_urls(app: Flask, uid: str) -> list[tuple[str, str]]:
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] != "audit":
            continue
        with app.test_request_context():
            url = app.url_for(rule.endpoint, **{name: uid for name in rule.arguments})
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            urls.append((method, url))
    return urls


def _call(client: Any, method: str, url: str) -> Any:
    if method == "GET":
        return client.get(url)
    return client.post(url, data={"csrf_token": csrf_token(client, "/login"), "q": "x"})


def test_only_auditors_reach_the_console(app, approved, make_applicant) -> None:
    uid = uid_of(approved.application_id)
    urls = _audit_urls(app, uid)
    assert len(urls) >= 8
    assert {"/audit/", "/audit/verify", "/audit/find"} <= {u for _, u in urls}

    anonymous = app.test_client()
    for method, url in urls:
        response = _call(anonymous, method, url)
        assert response.status_code == 302, (method, url)
        assert response.headers["Location"].startswith("/login"), (method, url)

    student = app.test_client()
    log_in_student(student, approved)
    staff_account = make_staff()
    staff = app.test_client()
    log_in(staff, vault().decrypt(staff_account.id_number_enc))
    _account("admin", ADMIN_ID, "系统管理员")
    admin = app.test_client()
    log_in(admin, ADMIN_ID)
    for who, client in (("student", student), ("staff", staff), ("admin", admin)):
        for method, url in urls:
            response = _call(client, method, url)
            assert response.status_code == 403, (who, method, url, response.status_code)

    _account("auditor", AUDITOR_ID, "审计员")
    auditor = app.test_client()
    log_in(auditor, AUDITOR_ID)
    assert all(_call(auditor, m, u).status_code < 400 for m, u in urls if m == "GET" and "whatif" not in u)


def test_the_auditor_home_is_audit_home(app) -> None:
    with app.test_request_context():
        assert app.url_for("audit.home") == "/audit/"

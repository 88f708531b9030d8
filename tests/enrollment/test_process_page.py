"""The 流程页面 tells the truth in every state of flows/enrollment.yaml (issue 16).

The states are read from the YAML, and each is reached by firing the flow's own events
through the engine, so a new state without a ``status`` (or one the page cannot render)
fails here. In each: the state's status text, the student's name, exactly one button with
the right text, and the stage rows (done / current / waiting / to do / not needed)."""

from __future__ import annotations

import re
from collections import deque

import pytest
from sqlalchemy import select

from gzsb.bootstrap import engine
from gzsb.cli.demo import demo_student
from gzsb.extensions import db
from gzsb.models import Application, RegistrationForm
from gzsb.workflow.loader import load_flow_file
from gzsb.workflow.spec import FlowSpec
from tests.conftest import FLOW_FILE
from tests.drive import actor_for, valid_payload
from tests.support import identity_uploads, log_in_student

FLOW = load_flow_file(FLOW_FILE)
# Events the student fires on a page before the event that leaves it (same page, no move).
BEFORE = {
    "upload_identity": ("give_face_consent",),
    "submit_preferences": ("check_xueji", "confirm_xueji"),
}
# Steps that take the application's own uploads.
UPLOADING = {"upload_identity", "request_manual_identity"}


def path_to(flow: FlowSpec, source: str, target: str) -> list[str]:
    """The events of a shortest route through the flow's graph (self-loops left out)."""
    seen, queue = {source: []}, deque([source])
    while queue:
        state = queue.popleft()
        if state == target:
            return seen[state]
        for t in flow.transitions:
            if t.source == state and t.dest != state and t.dest not in seen:
                seen[t.dest] = [*seen[state], t.event]
                queue.append(t.dest)
    raise AssertionError(f"{target} cannot be reached from {source}")


def fire(who, event: str) -> None:
    record = db.session.get(Application, who.application_id)
    flow = FLOW
    branch = flow.branches(event, record.state)[0]
    payload = valid_payload(flow, record, event, who)
    if event in UPLOADING:
        payload.update(identity_uploads(who))
    engine().fire(who.application_id, event, actor_for(who, branch.actors[0]), payload)


def reach(who, target: str) -> None:
    """Fire the flow's events until the application is in ``target`` (re-planning after
    each, since a branch's guards decide where an event leads)."""
    for _ in range(40):
        db.session.expire_all()
        state = db.session.get(Application, who.application_id).state
        if state == target:
            return
        event = path_to(FLOW, state, target)[0]
        for before in BEFORE.get(event, ()):
            fire(who, before)
        fire(who, event)
    raise AssertionError(f"did not reach {target}")


def main_of(html: str) -> str:
    return html.split("<main>", 1)[1].split("</main>", 1)[0]


def buttons_of(html: str) -> list[str]:
    return re.findall(r'<a class="button[^"]*"[^>]*>([^<]+)</a>', html)


def rows_of(html: str) -> dict[str, str]:
    found = re.findall(r'<span class="label">([^<]+)</span>\s*<span class="status">([^<]+)</span>', html)
    return dict(found)


def test_every_state_has_a_status_text() -> None:
    missing = [name for name, state in FLOW.states.items() if not state.status]
    assert not missing, f"states without a status for the 流程页面: {missing}"


# States no student sees: their account is disabled on entry (tests/appeals check that).
UNSEEN = {"frozen": "账号申诉 approved: the old account is disabled and its sessions end"}


def test_unseen_states_are_final() -> None:
    assert all(FLOW.states[name].final for name in UNSEEN)


@pytest.mark.parametrize("state", sorted(set(FLOW.states) - set(UNSEEN)))
def test_process_page_in_every_state(app, make_applicant, state: str) -> None:
    # 退役士兵: the optional 上传审核 stage is on this student's route.
    who = make_applicant(category="退役士兵")
    reach(who, state)
    spec = FLOW.states[state]
    client = app.test_client()
    log_in_student(client, who)
    response = client.get("/process")
    assert response.status_code == 200
    html = main_of(response.get_data(as_text=True))
    assert spec.status and spec.status in html
    assert demo_student(who.index).name in html
    # Exactly one button, and the right one.
    buttons = buttons_of(html)
    assert len(buttons) == 1 and "<button" not in html, buttons
    stage = next(s for s in FLOW.stages if s.key == spec.stage)
    assert buttons[0] == (spec.button or stage.button)
    rows = rows_of(html)
    assert len(rows) == len(FLOW.stages)
    if spec.waiting:
        assert rows[stage.label] == f"等待{spec.waiting}"
        assert "去认证" not in buttons and "上传审核" not in buttons
    if not spec.final:
        assert "网上报名截止时间" in html and "2027年01月12日 17:00" in html


def test_waiting_states_offer_no_action_of_the_stage(app, make_applicant) -> None:
    who = make_applicant(category="退役士兵")
    client = app.test_client()
    log_in_student(client, who)
    reach(who, "manual_identity")
    html = main_of(client.get("/process").get_data(as_text=True))
    assert buttons_of(html) == ["查看认证进度"]
    assert rows_of(html)["身份认证"] == "等待确认点人工认证"
    reach(who, "materials_review")
    html = main_of(client.get("/process").get_data(as_text=True))
    assert buttons_of(html) == ["查看审核进度"]
    assert rows_of(html)["上传审核"] == "等待确认点审核"


def test_order_deadline_and_optional_stage_are_told(app, make_applicant) -> None:
    ordinary = make_applicant()
    client = app.test_client()
    log_in_student(client, ordinary)
    html = main_of(client.get("/process").get_data(as_text=True))
    # Before the 学籍 check nobody knows yet whether 上传审核 is needed.
    assert "仅部分考生需要办理" in html
    reach(ordinary, "payment_pending")
    html = main_of(client.get("/process").get_data(as_text=True))
    assert "订单支付截止时间" in html and "继续支付" in html
    # A 普通 student whose 学籍 was confirmed: 上传审核 is not needed, and the page says why.
    assert rows_of(html)["上传审核"] == "无需办理" and "无需上传审核材料" in html


def test_download_is_done_only_after_a_download(app, make_applicant) -> None:
    who = make_applicant()
    reach(who, "approved")
    client = app.test_client()
    log_in_student(client, who)
    html = main_of(client.get("/process").get_data(as_text=True))
    assert buttons_of(html) == ["下载报名表"]
    assert rows_of(html)["下载报名表"] == "进行中"
    # The worker renders the PDF (immediate in tests) when the download page asks for it.
    client.get("/application")
    assert client.get("/application/form.pdf").status_code == 200
    form = db.session.scalars(
        select(RegistrationForm).where(RegistrationForm.application_id == who.application_id)
    ).one()
    db.session.refresh(form)
    assert form.downloaded_at is not None
    html = main_of(client.get("/process").get_data(as_text=True))
    assert rows_of(html)["下载报名表"] == "已完成"


def test_blocked_step_shows_the_guards_reason(app, make_applicant, clock) -> None:
    who = make_applicant()
    reach(who, "pledged")
    clock.now = FLOW.windows["registration"].closes
    client = app.test_client()
    log_in_student(client, who)
    html = main_of(client.get("/process").get_data(as_text=True))
    assert "报名时间已截止" in html

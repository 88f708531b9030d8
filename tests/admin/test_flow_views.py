"""The flow workbench (/admin/flows): editor API (problems at their lines, diagram, diff,
impact), the funnel, propose / approve / reject, and who may open it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from gzsb.extensions import db
from gzsb.models import AdminAction, Application, FlowProposal
from gzsb.store import FLOWS
from gzsb.workflow.loader import flow_sha256
from tests.admin.support import add_account, client_of, non_admin_clients
from tests.admin.test_views import endpoints_of
from tests.conftest import FLOW_FILE
from tests.support import csrf_token

SHIPPED = FLOW_FILE.read_text(encoding="utf-8")
VALIDATE, DIFF, IMPACT = "/admin/flows/api/validate", "/admin/flows/api/diff", "/admin/flows/api/impact"
OLD_CLOSE, NEW_CLOSE = 'closes: "2027-01-12T17:00:00+08:00"', 'closes: "2027-03-31T17:00:00+08:00"'


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def api(client: FlaskClient, url: str, text: str, token: str | None = None) -> Any:
    token = token if token is not None else csrf_token(client, "/admin/flows/edit")
    # As workbench.js sends it: JSON both ways, the token in a header.
    return client.post(url, json={"yaml": text}, headers={"X-CSRFToken": token, "Accept": "application/json"})


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    _, who = add_account("admin")
    return client_of(app, who)


def test_shipped_flow_has_the_close_date_the_tests_edit() -> None:
    assert SHIPPED.count(OLD_CLOSE) == 1


# ------------------------------------------------------------------------------ editor API


def test_a_typod_guard_is_reported_at_its_line(admin: FlaskClient) -> None:
    text = SHIPPED.replace("xueji_checked", "paied", 1)
    answer = api(admin, VALIDATE, text)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["ok"] is False and body["svg"] is None
    (problem,) = [p for p in body["problems"] if "paied" in p["message"]]
    assert problem["line"] == line_of(text, "paied")
    assert re.fullmatch(r"transitions\[\d+\]\.guards\[\d+\]", problem["path"])
    assert "known:" in problem["message"]


def test_a_syntax_error_is_reported_at_the_parsers_line(admin: FlaskClient) -> None:
    text = SHIPPED.replace("title: ", "title: [", 1)
    body = api(admin, VALIDATE, text).get_json()
    assert body["ok"] is False
    (problem,) = body["problems"]
    assert problem["line"] >= line_of(text, "title: [") and "not valid YAML" in problem["message"]


def test_a_valid_text_returns_the_diagram(admin: FlaskClient) -> None:
    body = api(admin, VALIDATE, SHIPPED.replace(OLD_CLOSE, NEW_CLOSE)).get_json()
    assert body["ok"] is True and body["problems"] == []
    assert body["svg"].startswith("<svg") and "</svg>" in body["svg"]
    assert len(body["sha256"]) == 64


def test_problems_and_yaml_are_escaped_in_json_and_pages(admin: FlaskClient) -> None:
    text = SHIPPED.replace("title: ", "title: <script>alert(1)</script>", 1).replace("xueji_checked", "<b>x</b>", 1)
    body = api(admin, VALIDATE, text).get_json()
    assert any("<b>x</b>" in p["message"] for p in body["problems"])  # data, shown with textContent
    # The page falls back to server rendering when proposing a bad text: escaped there.
    page = admin.post(
        "/admin/flows/propose",
        data={"yaml": text, "note": "x", "csrf_token": csrf_token(admin, "/admin/flows/edit")},
    )
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<script>alert(1)</script>" not in html


def test_diff_against_the_live_version(admin: FlaskClient) -> None:
    body = api(admin, DIFF, SHIPPED.replace(OLD_CLOSE, NEW_CLOSE)).get_json()
    assert body["ok"] is True
    (change,) = body["diff"]["changes"]
    assert (change["section"], change["key"], change["attr"]) == ("windows", "registration", "closes")
    assert change["new"].startswith("2027-03-31")
    assert "windows.registration.closes" in body["html"] and "时间窗口" in body["html"]


def test_api_requires_the_csrf_header(admin: FlaskClient) -> None:
    answer = admin.post(VALIDATE, json={"yaml": SHIPPED})
    assert answer.status_code == 400
    assert api(admin, VALIDATE, SHIPPED, token="forged").status_code == 400


def test_api_caps_the_body(admin: FlaskClient) -> None:
    huge = SHIPPED + "#" * (300 * 1024)
    answer = api(admin, VALIDATE, huge)
    assert answer.status_code == 413  # the app-wide body cap or the workbench's own, whichever is lower
    assert "过大" in answer.get_json()["message"]


def test_api_refuses_a_missing_text(admin: FlaskClient) -> None:
    token = csrf_token(admin, "/admin/flows/edit")
    answer = admin.post(VALIDATE, json={"text": "x"}, headers={"X-CSRFToken": token, "Accept": "application/json"})
    assert answer.status_code == 422 and answer.get_json()["fields"]["yaml"] == ["请提交流程文件内容"]


# ------------------------------------------------------------------------------ funnel


def test_funnel_counts_applications_per_state(app: Flask, admin: FlaskClient, make_applicant) -> None:
    first = make_applicant()
    make_applicant()
    db.session.get(Application, first.application_id).state = "pledged"
    db.session.commit()
    page = admin.get("/admin/flows")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<b data-state="started">1</b>' in html and '<b data-state="pledged">1</b>' in html
    svg = admin.get("/admin/flows/live.svg")
    assert svg.mimetype == "image/svg+xml"
    text = svg.get_data(as_text=True)
    assert text.count("1 人") == 2 and "0 人" in text


# ------------------------------------------------------------------------------ access


def test_every_workbench_route_refuses_everyone_but_admins(app: Flask, make_applicant) -> None:
    routes = endpoints_of(app, "admin_flows")
    assert len(routes) >= 8
    clients = non_admin_clients(app, make_applicant())
    for who, client in clients.items():
        token = csrf_token(client, "/login")
        for endpoint, method, url in routes:
            if method == "GET":
                response = client.get(url)
            else:  # a valid CSRF token, so that only the role check can refuse
                response = client.post(
                    url,
                    data={"yaml": SHIPPED, "note": "x", "csrf_token": token},
                    headers={"X-CSRFToken": token},
                )
            if who == "anonymous":
                assert response.status_code == 302, f"{endpoint} {method} let an anonymous user in"
                assert response.headers["Location"].startswith("/login"), endpoint
            else:
                assert response.status_code == 403, f"{endpoint} {method} let a {who} in ({response.status_code})"
    _, admin_who = add_account("admin")
    admin_client = client_of(app, admin_who)
    for endpoint, method, url in routes:
        if method == "GET" and "proposals" not in url:
            assert admin_client.get(url).status_code == 200, endpoint


# ------------------------------------------------------------------------------ two-person publish


def propose(client: FlaskClient, text: str, note: str = "延长报名截止时间", **extra: str) -> Any:
    data = {"yaml": text, "note": note, "csrf_token": csrf_token(client, "/admin/flows/edit"), **extra}
    return client.post("/admin/flows/propose", data=data)


def decide(client: FlaskClient, proposal_id: int, verb: str, **extra: str) -> Any:
    token = csrf_token(client, f"/admin/flows/proposals/{proposal_id}")
    return client.post(
        f"/admin/flows/proposals/{proposal_id}/{verb}", data={"csrf_token": token, **extra}, follow_redirects=True
    )


def proposal_id_of(response: Any) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def live_sha(app: Flask) -> str:
    return FLOWS.current(db.session, app.config["FLOW_NAME"]).sha256


def test_propose_then_a_second_admin_approves_and_the_version_is_live(app: Flask, admin: FlaskClient) -> None:
    before = live_sha(app)
    extended = SHIPPED.replace(OLD_CLOSE, NEW_CLOSE)
    pid = proposal_id_of(propose(admin, extended))
    page = admin.get(f"/admin/flows/proposals/{pid}").get_data(as_text=True)
    assert "windows.registration.closes" in page and "待批准" in page and 'id="own-note"' in page
    assert live_sha(app) == before  # nothing published yet
    _, second = add_account("admin")
    other = client_of(app, second)
    done = decide(other, pid, "approve")
    assert "已批准，新版本已发布" in done.get_data(as_text=True)
    db.session.expire_all()
    assert live_sha(app) == flow_sha256(extended)
    index = other.get("/admin/flows").get_data(as_text=True)
    live_row = re.search(r'<tr class="live" data-version="(\d+)">', index)
    assert live_row and int(live_row.group(1)) == FLOWS.current(db.session, app.config["FLOW_NAME"]).id
    actions = set(db.session.scalars(select(AdminAction.action)))
    assert {"propose_flow", "approve_flow", "publish_flow"} <= actions


def test_self_approval_is_refused(app: Flask, admin: FlaskClient) -> None:
    before = live_sha(app)
    pid = proposal_id_of(propose(admin, SHIPPED.replace(OLD_CLOSE, NEW_CLOSE)))
    page = decide(admin, pid, "approve").get_data(as_text=True)
    assert "不能审批自己提交的流程提案，须由另一位管理员审批" in page
    assert "待批准" in page
    db.session.expire_all()
    assert live_sha(app) == before


def test_reject_needs_a_reason_and_leaves_the_live_version(app: Flask, admin: FlaskClient) -> None:
    before = live_sha(app)
    pid = proposal_id_of(propose(admin, SHIPPED.replace(OLD_CLOSE, NEW_CLOSE)))
    _, second = add_account("admin")
    other = client_of(app, second)
    assert "请填写驳回原因" in decide(other, pid, "reject", reason=" ").get_data(as_text=True)
    page = decide(other, pid, "reject", reason="日期有误").get_data(as_text=True)
    assert "已驳回" in page and "日期有误" in page
    db.session.expire_all()
    assert live_sha(app) == before


def test_a_bad_yaml_is_never_proposed(app: Flask, admin: FlaskClient) -> None:
    response = propose(admin, SHIPPED.replace("xueji_checked", "paied", 1))
    assert response.status_code == 422
    assert "paied" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(FlowProposal)) == 0


def test_approval_migrates_in_flight_applications_when_asked(app: Flask, admin: FlaskClient, clock, make_applicant):
    """The deadline extension through the pages: after the old close date, propose the
    extended window with migration; once approved the student's application is on it."""
    student = make_applicant()
    clock.now = datetime(2027, 2, 1, 2, 0, tzinfo=UTC)
    extended = SHIPPED.replace(OLD_CLOSE, NEW_CLOSE)
    impact = api(admin, IMPACT, extended).get_json()
    assert impact["report"]["counts"]["unblocked"] == 1 and "解除阻塞" in impact["html"]
    pid = proposal_id_of(propose(admin, extended, migrate="1"))
    _, second = add_account("admin")
    page = decide(client_of(app, second), pid, "approve").get_data(as_text=True)
    assert "已迁移1份" in page
    db.session.expire_all()
    application = db.session.get(Application, student.application_id)
    assert application.flow_version_id == FLOWS.current(db.session, app.config["FLOW_NAME"]).id


def test_a_removed_state_offers_a_mapping(admin: FlaskClient) -> None:
    text = re.sub(r"\bpledged\b", "pledge_signed", SHIPPED)  # a rename: no area names this state
    body = api(admin, VALIDATE, text).get_json()
    assert body["ok"] is True, body["problems"]
    assert body["removed"] == ["pledged"] and "pledge_signed" in body["states"]

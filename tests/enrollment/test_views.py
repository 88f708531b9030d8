from __future__ import annotations

from sqlalchemy import select

from gzsb.bootstrap import engine
from gzsb.extensions import db
from gzsb.models import Account, Application
from gzsb.workflow.engine import Actor
from tests.support import CSRF_TOKEN, csrf_token, log_in_student, student_payload

TOKEN = CSRF_TOKEN
login = log_in_student


def csrf(client, path: str = "/login") -> str:
    return csrf_token(client, path)


def test_process_page_lists_every_stage_with_its_status(app, make_applicant) -> None:
    who = make_applicant()
    client = app.test_client()
    login(client, who)
    html = client.get("/process").get_data(as_text=True)
    for label in ("填写基本信息", "填写志愿信息", "信息确认", "身份认证", "网上支付", "上传审核", "下载报名表"):
        assert label in html
    assert 'class="stage current" aria-current="step"' in html
    assert html.count("未开始") == 6


def test_pledge_page_posts_the_event_and_moves_on(app, make_applicant) -> None:
    who = make_applicant()
    client = app.test_client()
    login(client, who)
    page = client.get("/application").get_data(as_text=True)
    assert "考试承诺书" in page and "我遵守" in page
    token = TOKEN.search(page).group(1)
    version = db.session.get(Application, who.application_id).version
    # Without the tick: the Chinese reason next to the field, nothing saved.
    refused = client.post("/application/events/accept_pledge", data={"csrf_token": token, "version": version})
    assert refused.status_code == 422
    assert "请先阅读并勾选考试承诺书" in refused.get_data(as_text=True)
    moved = client.post(
        "/application/events/accept_pledge", data={"csrf_token": token, "version": version, "agree": "true"}
    )
    assert moved.status_code == 302
    db.session.expire_all()
    assert db.session.get(Application, who.application_id).state == "pledged"
    # A second submit of the same (now stale) form is a conflict, not a second event.
    again = client.post(
        "/application/events/accept_pledge", data={"csrf_token": token, "version": version, "agree": "true"}
    )
    assert again.status_code == 409


def test_form_errors_keep_what_was_typed(app, make_applicant) -> None:
    who = make_applicant()
    engine().fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    client = app.test_client()
    login(client, who)
    token = csrf(client, "/application")
    data = {**student_payload(who, postcode="12"), "csrf_token": token}
    response = client.post("/application/events/submit_basic_info", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "邮编应为6位数字" in html
    assert 'value="天津市南开区卫津路92号"' in html


def test_post_without_csrf_token_is_refused(app, make_applicant) -> None:
    who = make_applicant()
    client = app.test_client()
    login(client, who)
    assert client.post("/application/events/accept_pledge", data={"agree": "true"}).status_code == 400
    db.session.expire_all()
    assert db.session.get(Application, who.application_id).state == "started"


def test_api_describes_state_events_and_blocked_reasons(app, make_applicant, clock) -> None:
    who = make_applicant()
    client = app.test_client()
    login(client, who)
    body = client.get("/api/application").get_json()
    assert body["state"] == "started" and body["label"] == "阅读考试承诺书"
    (pledge,) = body["events"]
    assert pledge["event"] == "accept_pledge" and pledge["available"] is True
    assert pledge["input"]["agree"]["required"] is True
    clock.advance(days=60)
    body = client.get("/api/application").get_json()
    assert body["events"][0]["available"] is False
    assert body["events"][0]["reasons"][0].startswith("报名时间已截止")


def test_api_fires_events_with_json_and_maps_errors(app, make_applicant) -> None:
    who = make_applicant()
    client = app.test_client()
    login(client, who)
    headers = {"X-CSRFToken": csrf(client, "/application")}
    bad = client.post("/api/application/events/accept_pledge", json={}, headers=headers)
    assert bad.status_code == 422 and bad.get_json()["fields"] == {"agree": ["请先阅读并勾选考试承诺书"]}
    unknown = client.post("/api/application/events/face_matched", json={}, headers=headers)
    assert unknown.status_code == 409 and unknown.get_json()["error"] == "event_not_available"
    version = client.get("/api/application").get_json()["version"]
    ok = client.post("/api/application/events/accept_pledge", json={"agree": True, "version": version}, headers=headers)
    assert ok.status_code == 200 and ok.get_json()["state"] == "pledged"
    stale = client.post("/api/application/events/submit_basic_info", json={"version": version}, headers=headers)
    assert stale.status_code == 409 and stale.get_json()["error"] == "stale"


def test_logout_ends_the_session_on_the_server(app, make_applicant) -> None:
    who = make_applicant()
    client = app.test_client()
    login(client, who)
    cookie = client.get_cookie("session").value
    token = csrf(client, "/process")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    other = app.test_client()
    other.set_cookie("session", cookie)
    assert other.get("/api/application").status_code == 401


def test_staff_reach_only_their_confirmation_point(app, make_applicant) -> None:
    from gzsb.accounts.service import create_account
    from gzsb.bootstrap import vault
    from gzsb.models import ConfirmationPoint

    who = make_applicant(category="退役士兵")
    application = db.session.get(Application, who.application_id)
    nk = db.session.scalars(select(ConfirmationPoint.id).where(ConfirmationPoint.code == "NK01")).one()
    hx = db.session.scalars(select(ConfirmationPoint.id).where(ConfirmationPoint.code == "HX01")).one()
    application.confirmation_point_id = nk
    create_account(
        db.session, vault(), name="河西老师", id_number="120104198001010017", password="Staff@2026x",
        role="staff", confirmation_point_id=hx,
    )  # fmt: skip
    db.session.commit()
    staff = db.session.scalars(select(Account).where(Account.role == "staff")).one()
    client = app.test_client()
    token = csrf(client)
    client.post("/login", data={"login": "120104198001010017", "password": "Staff@2026x", "csrf_token": token})
    response = client.post(
        f"/api/applications/{application.uid}/events/approve_materials",
        json={}, headers={"X-CSRFToken": csrf(client, "/")},
    )  # fmt: skip
    assert response.status_code == 403
    assert staff.role == "staff"
    assert Actor(f"account:{staff.id}", "staff").role == "staff"


def test_wrong_password_is_refused_and_locks_after_five(app, make_applicant) -> None:
    from tests.support import demo_student

    who = make_applicant()
    client = app.test_client()
    number = demo_student(who.index).id_number
    for _ in range(5):
        response = client.post("/login", data={"login": number, "password": "wrong", "csrf_token": csrf(client)})
        assert response.status_code == 401 and "账号或密码错误" in response.get_data(as_text=True)
    locked = client.post("/login", data={"login": number, "password": who.password, "csrf_token": csrf(client)})
    assert locked.status_code == 401 and "锁定" in locked.get_data(as_text=True)

"""Admin pages, first log-in, disabled accounts and landing pages by role."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from gzsb.cli.demo import demo_student
from gzsb.extensions import db
from gzsb.models import Account, AdminAction, ConfirmationPoint
from tests.admin.support import add_account, client_of, non_admin_clients, one_time_password, person
from tests.support import csrf_token, log_in

NEW_PASSWORD = "Kq7mWz2026pass"


def endpoints_of(app: Flask, blueprint: str) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) of every route of ``blueprint``, ids filled with 1."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] != blueprint:
            continue
        with app.test_request_context():
            url = app.url_for(rule.endpoint, **dict.fromkeys(rule.arguments, 1))
        found += [(rule.endpoint, method, url) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def post(client, url: str, data: dict[str, str] | None = None, token_page: str = "/login"):
    return client.post(url, data={**(data or {}), "csrf_token": csrf_token(client, token_page)})


# ------------------------------------------------------------------------- access


def test_every_admin_route_refuses_everyone_but_admins(app, make_applicant) -> None:
    routes = endpoints_of(app, "admin")
    assert len(routes) >= 12 and {m for _, m, _ in routes} == {"GET", "POST"}
    clients = non_admin_clients(app, make_applicant())
    actions_before = db.session.scalar(select(db.func.count()).select_from(AdminAction))
    for who, client in clients.items():
        for endpoint, method, url in routes:
            if method == "GET":
                response = client.get(url)
            else:  # a valid CSRF token, so that only the role check can refuse
                response = post(client, url, {"role": "admin", "code": "ZZ01", "name": "x"})
            if who == "anonymous":
                assert response.status_code == 302, f"{endpoint} {method} let an anonymous user in"
                assert response.headers["Location"].startswith("/login"), endpoint
            else:
                assert response.status_code == 403, f"{endpoint} {method} let a {who} in ({response.status_code})"
    assert db.session.scalar(select(db.func.count()).select_from(AdminAction)) == actions_before
    assert db.session.scalar(select(db.func.count()).select_from(Account).where(Account.disabled_at.is_not(None))) == 0
    # An admin does reach every GET page (the URLs above are real).
    _, admin_who = add_account("admin")
    admin_client = client_of(app, admin_who)
    for endpoint, method, url in routes:
        if method == "GET" and "<" not in url and endpoint != "admin.edit_point":
            assert admin_client.get(url).status_code == 200, endpoint


@pytest.mark.parametrize(
    ("role", "landing"), [("staff", "/staff/"), ("admin", "/admin/"), ("auditor", None), ("student", "/process")]
)
def test_landing_page_by_role(app, make_applicant, role: str, landing: str | None) -> None:
    client = app.test_client()
    if role == "student":
        who = make_applicant()
        login = demo_student(who.index).id_number
    else:
        login = add_account(role)[1].id_number
    response = client.post(
        "/login", data={"login": login, "password": "Demo@2026gzsb", "csrf_token": csrf_token(client, "/login")}
    )
    location = response.headers["Location"]
    if landing is None:  # the auditor console
        landing = "/audit/"
    assert location == landing
    assert client.get(location).status_code == 200


def test_admin_home_links_to_the_flow_pages(app) -> None:
    _, who = add_account("admin")
    assert 'href="/admin/flows"' in client_of(app, who).get("/admin/").get_data(as_text=True)


# -------------------------------------------------------------------- first log-in


def create_on_page(client, role: str = "staff", point: str = "NK01"):
    who = person("王老师")
    data = {"role": role, "id_number": who.id_number, "name": who.name, "mobile": who.mobile, "point": point}
    response = post(client, "/admin/accounts", data, "/admin/accounts")
    return who, response


def test_one_time_password_works_once_and_forces_the_change(app) -> None:
    _, admin_who = add_account("admin")
    admin_client = client_of(app, admin_who)
    who, response = create_on_page(admin_client)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    password = one_time_password(response.get_data(as_text=True))
    assert password not in admin_client.get("/admin/accounts").get_data(as_text=True)  # shown once
    assert password not in admin_client.get("/admin/log").get_data(as_text=True)

    client, other = app.test_client(), app.test_client()
    for c in (client, other):
        log_in(c, who.id_number, password)
    assert client.get("/staff/").headers["Location"] == "/account/password"
    assert client.get("/admin/").headers["Location"] == "/account/password"
    assert client.get("/api/application", headers={"Accept": "application/json"}).status_code == 403
    page = client.get("/account/password")
    assert page.status_code == 200 and "修改初始密码" in page.get_data(as_text=True)

    def change(current: str, new: str, again: str | None = None):
        data = {"current_password": current, "password": new, "password2": again or new}
        return post(client, "/account/password", data, "/account/password")

    refused = change(password, password)
    assert refused.status_code == 422 and "新密码不能与当前密码相同" in refused.get_data(as_text=True)
    assert change(password, "abc12345").status_code == 422  # a common password
    assert change(password, "short1").status_code == 422
    assert change(password, NEW_PASSWORD, NEW_PASSWORD + "x").status_code == 422
    assert change("wrong-password1", NEW_PASSWORD).status_code == 422
    done = change(password, NEW_PASSWORD)
    assert done.status_code == 302 and done.headers["Location"] == "/staff/"
    assert client.get("/staff/").status_code == 200
    # The other session (same one-time password) ended with the change.
    assert other.get("/staff/").headers["Location"].startswith("/login")
    fresh = app.test_client()
    wrong = fresh.post(
        "/login", data={"login": who.id_number, "password": password, "csrf_token": csrf_token(fresh, "/login")}
    )
    assert wrong.status_code == 401
    log_in(fresh, who.id_number, NEW_PASSWORD)
    assert fresh.get("/staff/").status_code == 200
    account = db.session.scalars(select(Account).where(Account.role == "staff")).one()
    db.session.refresh(account)
    assert not account.must_change_password and account.failed_logins == 0


def test_wrong_current_passwords_on_the_change_page_lock_the_account(app) -> None:
    _, admin_who = add_account("admin")
    who, response = create_on_page(client_of(app, admin_who), role="auditor", point="")
    password = one_time_password(response.get_data(as_text=True))
    client = app.test_client()
    log_in(client, who.id_number, password)
    for _ in range(5):
        data = {"current_password": "Wrong12345x", "password": NEW_PASSWORD, "password2": NEW_PASSWORD}
        answer = post(client, "/account/password", data, "/account/password")
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    account = db.session.scalars(select(Account).where(Account.role == "auditor")).one()
    db.session.refresh(account)
    assert account.locked_until is not None and account.must_change_password
    assert client.get("/account/password").headers["Location"].startswith("/login")


# ---------------------------------------------------------------- disabled accounts


def test_disabled_account_cannot_log_in_and_its_session_ends(app) -> None:
    me, admin_who = add_account("admin")
    staff, staff_who = add_account("staff")
    admin_client, staff_client = client_of(app, admin_who), client_of(app, staff_who)
    assert staff_client.get("/staff/").status_code == 200
    response = post(admin_client, f"/admin/accounts/{staff.id}/disable", token_page="/admin/accounts")
    assert response.status_code == 302
    assert staff_client.get("/staff/").headers["Location"].startswith("/login")
    fresh = app.test_client()
    data = {"login": staff_who.id_number, "password": "Demo@2026gzsb"}
    refused = fresh.post("/login", data={**data, "csrf_token": csrf_token(fresh, "/login")})
    assert refused.status_code == 403 and "已停用" in refused.get_data(as_text=True)
    assert fresh.get("/staff/").headers["Location"].startswith("/login")
    # A wrong password is answered as for anyone: nothing tells the account is disabled.
    wrong = fresh.post("/login", data={**data, "password": "Nope12345x", "csrf_token": csrf_token(fresh, "/login")})
    assert wrong.status_code == 401 and "已停用" not in wrong.get_data(as_text=True)
    # Re-enabled, the same password works again.
    assert post(admin_client, f"/admin/accounts/{staff.id}/enable", token_page="/admin/accounts").status_code == 302
    log_in(fresh, staff_who.id_number)
    assert fresh.get("/staff/").status_code == 200
    # An admin cannot disable themself.
    refused = post(admin_client, f"/admin/accounts/{me.id}/disable", token_page="/admin/accounts")
    assert refused.status_code == 422 and "不能停用自己的账号" in refused.get_data(as_text=True)
    db.session.refresh(me)
    assert me.disabled_at is None


def test_reset_password_on_the_page(app) -> None:
    _, admin_who = add_account("admin")
    staff, staff_who = add_account("staff")
    admin_client, staff_client = client_of(app, admin_who), client_of(app, staff_who)
    response = post(admin_client, f"/admin/accounts/{staff.id}/reset-password", token_page="/admin/accounts")
    password = one_time_password(response.get_data(as_text=True))
    assert staff_client.get("/staff/").headers["Location"].startswith("/login")
    fresh = app.test_client()
    log_in(fresh, staff_who.id_number, password)
    assert fresh.get("/staff/").headers["Location"] == "/account/password"


# ------------------------------------------------------------------- pages and log


def test_accounts_page_creates_lists_masked_and_refuses_bad_input(app) -> None:
    _, admin_who = add_account("admin")
    client = client_of(app, admin_who)
    who, response = create_on_page(client, role="staff", point="")
    assert response.status_code == 422 and "必须指定所属确认点" in response.get_data(as_text=True)
    who, response = create_on_page(client, role="staff", point="NK01")
    assert response.status_code == 200
    page = client.get("/admin/accounts?role=staff").get_data(as_text=True)
    assert who.id_number not in page and who.id_number[-4:] in page and who.mobile not in page
    assert admin_who.id_number[-4:] not in page  # filtered to staff
    duplicate = post(
        client,
        "/admin/accounts",
        {"role": "admin", "id_number": who.id_number, "name": "李老师", "mobile": "13912345678"},
        "/admin/accounts",
    )
    assert duplicate.status_code == 422 and "该身份证号已注册" in duplicate.get_data(as_text=True)
    home = client.get("/admin/").get_data(as_text=True)
    assert 'data-role="staff">1<' in home and 'data-role="admin">1<' in home and 'data-role="points">2<' in home


def test_points_pages_and_the_action_log(app) -> None:
    _, admin_who = add_account("admin")
    add_account("staff", "NK01")
    client = client_of(app, admin_who)
    data = {"code": "HP01", "name": "和平区招生考试中心", "address": "和平区", "office_hours": "工作日 9:00-17:00"}
    assert post(client, "/admin/points", data, "/admin/points").status_code == 302
    assert post(client, "/admin/points", data, "/admin/points").status_code == 422  # same code
    point = db.session.scalars(select(ConfirmationPoint).where(ConfirmationPoint.code == "HP01")).one()
    edit = {"name": "和平区招生考试中心", "address": "和平区南京路1号", "office_hours": "工作日"}
    assert post(client, f"/admin/points/{point.id}", edit, f"/admin/points/{point.id}").status_code == 302
    nk01 = db.session.scalars(select(ConfirmationPoint).where(ConfirmationPoint.code == "NK01")).one()
    refused = post(client, f"/admin/points/{nk01.id}/delete", token_page="/admin/points")
    assert refused.status_code == 422 and "只能停用" in refused.get_data(as_text=True)
    assert post(client, f"/admin/points/{nk01.id}/disable", token_page="/admin/points").status_code == 302
    assert post(client, f"/admin/points/{point.id}/delete", token_page="/admin/points").status_code == 302
    db.session.expire_all()
    assert db.session.get(ConfirmationPoint, nk01.id).disabled_at is not None
    assert db.session.get(ConfirmationPoint, point.id) is None
    who, _ = create_on_page(client, role="auditor", point="")
    log = client.get("/admin/log").get_data(as_text=True)
    for label in ("新增确认点", "修改确认点", "停用确认点", "删除确认点", "创建账号"):
        assert label in log
    assert who.id_number not in log and who.mobile not in log and who.id_number[-4:] in log
    actions = list(db.session.scalars(select(AdminAction.action).order_by(AdminAction.id)))
    assert actions == ["create_point", "edit_point", "disable_point", "delete_point", "create_account"]

"""A form sent after the session was lost (退出 in another tab): a Chinese page in the
product's layout that offers 重新登录 with next= back to the form (issue 16). The draft
itself is kept by the browser: tests/e2e/test_lost_session.py."""

from __future__ import annotations

from bs4 import BeautifulSoup

from gzsb.bootstrap import engine
from tests.support import csrf_token, log_in_student, student_payload


def test_a_form_sent_after_logging_out_elsewhere_offers_relogin_back_to_it(app, make_applicant) -> None:
    who = make_applicant()
    engine().fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    tab = app.test_client()
    log_in_student(tab, who)
    token = csrf_token(tab, "/application")
    tab.post("/logout", data={"csrf_token": token})  # the other tab's 退出 (same browser, same cookie)

    form = {k: str(v) for k, v in student_payload(who).items()}
    response = tab.post(
        "/application/events/submit_basic_info",
        data={**form, "csrf_token": token, "version": "2"},
        headers={"Referer": "http://localhost/application"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "天津市高职升本网上报名" in page and "Bad Request" not in page and "CSRF" not in page
    assert "登录已失效，请重新登录" in page and "已保存在本机浏览器中" in page
    relogin = BeautifulSoup(page, "html.parser").select_one("a#relogin")
    assert relogin is not None and relogin.text == "重新登录"
    assert relogin["href"] == "/login?next=/application"

    # Logging in again there lands on the same form.
    login = tab.post(
        relogin["href"],
        data={"login": form["id_number"], "password": who.password, "csrf_token": csrf_token(tab, "/login")},
    )
    assert login.status_code == 302 and login.headers["Location"] == "/application"
    assert 'data-draft="basic_info"' in tab.get("/application").get_data(as_text=True)


def test_a_stale_form_of_a_logged_in_student_goes_back_to_the_form(app, make_applicant) -> None:
    who = make_applicant()
    tab = app.test_client()
    log_in_student(tab, who)
    response = tab.post("/application/events/accept_pledge", data={"agree": "true", "csrf_token": "stale"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "页面已过期" in page
    back = BeautifulSoup(page, "html.parser").select_one("a#back-to-form")
    assert back is not None and back["href"] == "/application"


def test_an_api_csrf_failure_is_json(app, make_applicant) -> None:
    who = make_applicant()
    tab = app.test_client()
    log_in_student(tab, who)
    response = tab.post("/api/application/events/accept_pledge", json={"agree": True})
    assert response.status_code == 400 and response.is_json
    assert response.get_json()["error"] == "csrf_400"

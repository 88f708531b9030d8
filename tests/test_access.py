"""Safety across routes (issue 3): CSRF on every state-changing route, and a student reaches
only their own application whatever identifiers they put in paths, forms or JSON."""

from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.routing import Rule

from gzsb.bootstrap import engine
from gzsb.cli.demo import demo_student
from gzsb.extensions import db
from gzsb.models import Application
from tests.support import csrf_token, log_in_student, student_payload

# POST routes without a CSRF token, and why: other servers call them, signed.
CSRF_EXEMPT = {
    "payments.notify": "the payment gateway's server-to-server notify, verified by its signature",
    "payments.sandbox.api_query": "the sandbox gateway's server-to-server query API",
}
# Path arguments of the issue-3 blueprints that name something of a student, and the test
# that tries another student's value there.
OWNED_ARGUMENTS = {
    ("catalog.registry_photo", "record_id"): "test_journey_pages::test_registry_photo_only_for_its_own_student",
    ("catalog.evidence", "name"): "test_journey_pages::test_report_stores_evidence_and_opens_a_correction_request",
    ("api.fire_as_staff", "uid"): "test_access::test_student_cannot_fire_events_on_another_application",
}
ISSUE3_BLUEPRINTS = ("auth", "enrollment", "catalog", "api")
# Arguments that name no object of anyone (an event name is checked against the flow).
NEUTRAL_ARGUMENTS = {"event"}
DUMMY = {"event": "accept_pledge", "int": 1, "default": "x" * 32}


def token(client, path: str = "/application") -> str:
    return csrf_token(client, path)


login = log_in_student


def url_of(app: Flask, rule: Rule) -> str:
    values = {}
    for name in rule.arguments:
        converter = type(rule._converters[name]).__name__  # type: ignore[attr-defined]
        values[name] = DUMMY["int"] if converter == "IntegerConverter" else DUMMY.get(name, DUMMY["default"])
    with app.test_request_context():
        return app.url_for(rule.endpoint, **values)


def state_of(who) -> str:
    db.session.expire_all()
    return db.session.get(Application, who.application_id).state


# ----------------------------------------------------------------------------- CSRF


def test_every_post_route_refuses_a_request_without_csrf_token(app, make_applicant) -> None:
    who = make_applicant()
    client = app.test_client()
    login(client, who)
    posts = [r for r in app.url_map.iter_rules() if "POST" in (r.methods or ())]
    assert len(posts) > 10
    checked = []
    for rule in posts:
        if rule.endpoint in CSRF_EXEMPT:
            continue
        url = url_of(app, rule)
        response = client.post(url, data={"agree": "true", "version": "1"})
        assert response.status_code == 400, f"{rule.endpoint} ({url}) took a POST without a CSRF token"
        checked.append(rule.endpoint)
    assert {"auth.login", "auth.logout", "auth.register", "enrollment.fire", "catalog.report_xueji"} <= set(checked)
    assert {"admin.create_account", "admin.disable_account", "first_login.change_password"} <= set(checked)
    json_post = client.post("/api/application/events/accept_pledge", json={"agree": True})
    assert json_post.status_code == 400  # the JSON API wants the X-CSRFToken header
    assert state_of(who) == "started"
    assert set(CSRF_EXEMPT) <= {r.endpoint for r in posts}, "an exempt endpoint no longer exists: update the list"


# ------------------------------------------------------------------- own application


def test_issue3_routes_with_identifiers_are_all_tried_with_another_students(app) -> None:
    """Every path argument of the student-facing blueprints is covered by a cross-student test."""
    found = {
        (rule.endpoint, name)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in ISSUE3_BLUEPRINTS
        for name in rule.arguments
        if name not in NEUTRAL_ARGUMENTS
    }
    assert found == set(OWNED_ARGUMENTS), (
        f"routes taking identifiers without a cross-student test: {found - set(OWNED_ARGUMENTS)}"
    )


def test_student_cannot_fire_events_on_another_application(app, make_applicant) -> None:
    me, other = make_applicant(), make_applicant()
    theirs = db.session.get(Application, other.application_id)
    client = app.test_client()
    login(client, me)
    headers = {"X-CSRFToken": token(client)}
    response = client.post(
        f"/api/applications/{theirs.uid}/events/accept_pledge", json={"agree": True}, headers=headers
    )
    assert response.status_code == 403
    assert state_of(other) == "started"


def test_identifiers_smuggled_into_forms_and_json_act_on_the_own_application_only(app, make_applicant) -> None:
    me, other = make_applicant(), make_applicant()
    theirs = db.session.get(Application, other.application_id)
    client = app.test_client()
    login(client, me)
    smuggled = {"application_id": str(other.application_id), "uid": theirs.uid, "account_id": str(other.account_id)}
    form = {"agree": "true", "csrf_token": token(client), **smuggled}
    response = client.post("/application/events/accept_pledge", data=form)
    assert response.status_code in (302, 422)
    assert state_of(other) == "started"
    headers = {"X-CSRFToken": token(client)}
    payload = {**student_payload(me), **smuggled}
    client.post("/api/application/events/submit_basic_info", json=payload, headers=headers)
    assert state_of(other) == "started"
    assert "basic_info" not in (db.session.get(Application, other.application_id).data or {})
    assert state_of(me) == "preferences"  # the events did act: on the student's own application
    # What the student sees is their own application only.
    engine().fire(other.application_id, "accept_pledge", other.actor, {"agree": True})
    mine = db.session.get(Application, me.application_id)
    assert client.get("/api/application").get_json()["application"] == mine.uid
    html = client.get("/application").get_data(as_text=True) + client.get("/process").get_data(as_text=True)
    assert demo_student(other.index).name not in html
    assert theirs.uid not in html


@pytest.mark.parametrize("path", ["/application", "/process", "/api/application", "/catalog/search"])
def test_pages_of_a_student_need_a_login(app, path: str) -> None:
    response = app.test_client().get(path)
    assert response.status_code in (302, 401)
    if response.status_code == 302:
        assert "/login" in response.headers["Location"]

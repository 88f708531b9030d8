"""The pages' CSRF token is signed once per session token and reused (gzsb.common.csrf):
the same session gets the same token on every page, the token still passes the form check,
and another session gets its own."""

from __future__ import annotations

import time

from flask import Flask

from tests.support import csrf_token, log_in_student, new_applicant


def test_a_session_keeps_its_signed_token_and_it_still_passes(app: Flask) -> None:
    who = new_applicant(41)
    client = app.test_client()
    log_in_student(client, who)
    first = csrf_token(client, "/process")
    time.sleep(1.1)  # a new signature would carry a later timestamp (itsdangerous counts seconds)
    second = csrf_token(client, "/application")
    assert first == second  # signed once, reused
    answer = client.post("/application/events/accept_pledge", data={"csrf_token": second, "agree": "true"})
    assert answer.status_code in (302, 422)  # past the CSRF check (422 would be the step's own refusal)
    refused = client.post("/application/events/accept_pledge", data={"csrf_token": second[:-2] + "xx"})
    assert refused.status_code == 400  # a tampered token is still refused


def test_another_session_gets_its_own_token(app: Flask) -> None:
    one, two = app.test_client(), app.test_client()
    log_in_student(one, new_applicant(42))
    log_in_student(two, new_applicant(43))
    assert csrf_token(one, "/process") != csrf_token(two, "/process")

"""下载报名表 and the public verify page, through the Flask test client.

(Named test_form_views.py: tests/regform/test_service.py already takes the module name test_forms.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from gzsb.accounts.service import create_account
from gzsb.bootstrap import vault
from gzsb.cli.demo import demo_student, id_number
from gzsb.extensions import db
from gzsb.models import Application, ConfirmationPoint, RegistrationForm
from gzsb.regform import content
from tests.support import CSRF_TOKEN, PASSWORD_HASH, csrf_token, log_in, pay, to_confirming, to_payment

TOKEN = CSRF_TOKEN
LOGOUT = 'action="/logout"'


def csrf(client, path: str = "/login") -> str:
    return csrf_token(client, path)


login_as = log_in


def student_client(app, who):
    client = app.test_client()
    login_as(client, demo_student(who.index).id_number)
    return client


def approve(eng, who) -> Application:
    to_payment(eng, who)
    pay(eng, who)
    return db.session.get(Application, who.application_id)


_staff_numbers = iter(range(10, 99))


def staff_client(app, point: str):
    number = id_number(f"120104198001{next(_staff_numbers):02d}001")
    point_id = db.session.scalars(select(ConfirmationPoint.id).where(ConfirmationPoint.code == point)).one()
    create_account(
        db.session,
        vault(),
        name="确认点老师",
        id_number=number,
        password_hash=PASSWORD_HASH,
        role="staff",
        confirmation_point_id=point_id,
    )
    db.session.commit()
    client = app.test_client()
    login_as(client, number)
    return client


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "download.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def form_of(record: Application) -> RegistrationForm:
    return db.session.scalars(select(RegistrationForm).where(RegistrationForm.application_id == record.id)).one()


def test_the_download_page_offers_the_pdf_to_its_owner(app, make_applicant, eng, tmp_path) -> None:
    who = make_applicant()
    record = approve(eng, who)
    client = student_client(app, who)
    html = client.get("/application").get_data(as_text=True)
    form = form_of(record)
    assert "报名已完成" in html and form.serial in html
    assert 'href="/application/form.pdf"' in html and "下载报名表" in html
    assert LOGOUT in html and "退出" in html
    assert 'http-equiv="refresh"' not in html

    response = client.get("/application/form.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert form.serial in response.headers["Content-Disposition"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response.headers["Cache-Control"]
    student = demo_student(who.index)
    text = pdf_text(response.data, tmp_path)
    assert student.name in text and student.id_number in text and form.serial in text and "天津理工大学" in text


def test_while_the_pdf_is_not_ready_the_page_says_so_and_refreshes(app, make_applicant, eng, clock, tmp_path) -> None:
    broken = tmp_path / "broken-wkhtmltopdf"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    real = app.config["WKHTMLTOPDF"]
    app.config["WKHTMLTOPDF"] = str(broken)
    who = make_applicant()
    record = approve(eng, who)
    client = student_client(app, who)
    html = client.get("/application").get_data(as_text=True)
    assert "报名表生成中" in html and '<meta http-equiv="refresh" content="3">' in html
    assert "下载报名表</a>" not in html
    assert LOGOUT in html
    download = client.get("/application/form.pdf")
    assert download.status_code == 302 and download.headers["Location"].endswith("/application")

    app.config["WKHTMLTOPDF"] = real  # the renderer is back; the retry comes after the retry time
    assert "报名表生成中" in client.get("/application").get_data(as_text=True)
    clock.advance(seconds=app.config["FORM_RENDER_RETRY_SECONDS"] + 1)
    html = client.get("/application").get_data(as_text=True)
    assert "报名表生成中" not in html and form_of(record).serial in html
    assert client.get("/application/form.pdf").mimetype == "application/pdf"


def test_students_get_only_their_own_form(app, make_applicant, eng, tmp_path) -> None:
    first, second, unfinished = make_applicant(), make_applicant(), make_applicant()
    approve(eng, first)
    approve(eng, second)
    to_confirming(eng, unfinished)
    a, b = student_client(app, first), student_client(app, second)
    a.get("/application")
    b.get("/application")
    text_a = pdf_text(a.get("/application/form.pdf").data, tmp_path)
    text_b = pdf_text(b.get("/application/form.pdf").data, tmp_path)
    name_a, name_b = demo_student(first.index).name, demo_student(second.index).name
    assert name_a in text_a and name_b not in text_a
    assert name_b in text_b and name_a not in text_b
    response = student_client(app, unfinished).get("/application/form.pdf")
    assert response.status_code == 302
    assert app.test_client().get("/application/form.pdf").headers["Location"].startswith("/login")


def test_staff_of_the_students_point_may_fetch_the_form(app, make_applicant, eng) -> None:
    who = make_applicant()
    record = approve(eng, who)  # not rendered yet: the staff request asks for it
    path = f"/staff/applications/{record.uid}/form.pdf"
    own_point = staff_client(app, "NK01").get(path)
    assert own_point.status_code == 200 and own_point.mimetype == "application/pdf"
    other_point = staff_client(app, "HX01").get(path)
    assert other_point.status_code == 404 and b"%PDF" not in other_point.data
    assert staff_client(app, "NK01").get("/staff/applications/" + "0" * 32 + "/form.pdf").status_code == 404
    assert student_client(app, who).get(path).status_code == 403


def test_the_verify_page_is_public_and_shows_only_masked_data(app, make_applicant, eng) -> None:
    who = make_applicant()
    record = approve(eng, who)
    owner = student_client(app, who)
    owner.get("/application")
    form = form_of(record)
    code = content.verification_code(app.config["FORM_KEY"], form.serial, form.digest)
    assert LOGOUT in owner.get(f"/verify/{form.serial}?code={code}").get_data(as_text=True)  # 【退出】 when logged in
    anonymous = app.test_client()
    response = anonymous.get(f"/verify/{form.serial}?code={code}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "报名表真实有效" in html
    student = demo_student(who.index)
    assert student.name[0] + "*" in html and student.name not in html
    assert student.id_number[:6] + "********" + student.id_number[-4:] in html and student.id_number not in html
    assert "南开区招生考试中心" in html and "天津理工大学" in html
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Referrer-Policy"] == "no-referrer"
    assert LOGOUT not in html  # nobody is logged in

    typed = anonymous.get(f"/verify?serial={form.serial.lower()}&code={content.format_code(code)}")
    assert typed.status_code == 302
    assert "报名表真实有效" in anonymous.get(typed.headers["Location"]).get_data(as_text=True)


def _verdict_block(html: str) -> str:
    return html.split("<h1>报名表核验</h1>", 1)[1].split("<form", 1)[0]


def test_wrong_codes_and_unknown_serials_look_the_same(app, make_applicant, eng) -> None:
    who = make_applicant()
    record = approve(eng, who)
    student_client(app, who).get("/application")
    form = form_of(record)
    anonymous = app.test_client()
    wrong = anonymous.get(f"/verify/{form.serial}?code={'A' * 16}").get_data(as_text=True)
    unknown = anonymous.get(f"/verify/2027-NK01-999999?code={'A' * 16}").get_data(as_text=True)
    garbage = anonymous.get("/verify/<script>?code=x").get_data(as_text=True)
    assert "无效" in wrong
    assert _verdict_block(wrong) == _verdict_block(unknown) == _verdict_block(garbage)
    assert demo_student(who.index).name[0] + "*" not in wrong
    assert "<script>" not in garbage


def test_a_changed_application_makes_the_old_paper_outdated(app, make_applicant, eng, clock) -> None:
    who = make_applicant()
    record = approve(eng, who)
    client = student_client(app, who)
    client.get("/application")
    form = form_of(record)
    old_code = content.verification_code(app.config["FORM_KEY"], form.serial, form.digest)
    data = dict(record.data)
    data["basic_info"] = {**data["basic_info"], "address": "天津市西青区宾水西道391号"}
    record.data = data
    db.session.commit()
    html = client.get("/application").get_data(as_text=True)  # re-rendered for the new content
    assert form.serial in html and "报名表生成中" not in html
    page = app.test_client().get(f"/verify/{form.serial}?code={old_code}").get_data(as_text=True)
    assert "内容已变更" in page and "报名表真实有效" not in page


@pytest.mark.parametrize("path", ["/verify", "/verify/2027-NK01-000001"])
def test_the_verify_page_without_a_code_asks_for_one(app, path) -> None:
    html = app.test_client().get(path).get_data(as_text=True)
    assert 'name="serial"' in html and 'name="code"' in html
    assert "无效" not in html and "真实有效" not in html

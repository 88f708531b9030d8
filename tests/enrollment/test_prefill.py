"""基本信息 prefills 毕业院校, 所学专业 and 毕业年份 from the student's own 学籍/学历 record,
and a different answer is accepted but flagged: shown to the student and recorded (issue 16)."""

from __future__ import annotations

import json

from sqlalchemy import select

from gzsb.bootstrap import engine, vault
from gzsb.cli.demo import demo_student
from gzsb.extensions import db
from gzsb.models import Application, HistoryEvent, RegistryRecord
from tests.support import csrf_token, log_in_student, student_payload


def record_of(who) -> RegistryRecord:
    index = vault().index(demo_student(who.index).id_number)
    return db.session.scalars(select(RegistryRecord).where(RegistryRecord.id_number_index == index)).one()


def post(client, who, event: str, data: dict):
    db.session.expire_all()
    version = db.session.get(Application, who.application_id).version
    form = {"csrf_token": csrf_token(client, "/application"), "version": version, **data}
    return client.post(f"/application/events/{event}", data=form)


def test_basic_info_is_prefilled_from_the_registry_and_a_mismatch_is_flagged(app, make_applicant) -> None:
    who = make_applicant()
    record = record_of(who)
    record.school, record.major, record.graduation_year = "天津现代职业技术学院", "软件技术", 2027
    db.session.commit()
    engine().fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    client = app.test_client()
    log_in_student(client, who)

    html = client.get("/application").get_data(as_text=True)
    assert 'name="college" value="天津现代职业技术学院"' in html
    assert 'name="major" value="软件技术"' in html and 'name="graduation_year" value="2027"' in html
    assert 'id="registry-prefill"' in html and 'id="registry-mismatch"' not in html

    # A different major: the form, sent back with an error elsewhere, warns at once.
    form = {k: str(v) for k, v in student_payload(who, college="天津现代职业技术学院", major="计算机应用技术").items()}
    page = post(client, who, "submit_basic_info", {**form, "postcode": "1"}).get_data(as_text=True)
    assert 'id="registry-mismatch"' in page and "所学专业：学籍记录为“软件技术”" in page

    # Accepted, not silently: kept for the pages and recorded in the history.
    assert post(client, who, "submit_basic_info", form).status_code == 302
    db.session.expire_all()
    application = db.session.get(Application, who.application_id)
    assert application.state == "preferences"
    assert application.data["registry_mismatch"] == {"major": "软件技术"}
    last = db.session.scalars(
        select(HistoryEvent).where(HistoryEvent.application_id == who.application_id).order_by(HistoryEvent.seq.desc())
    ).first()
    assert last.event == "submit_basic_info" and json.loads(last.payload)["registry_mismatch"] == ["major"]
    html = client.get("/application").get_data(as_text=True)
    assert 'id="registry-mismatch"' in html and "所学专业与学籍/学历记录不一致（记录为：软件技术）" in html


def test_matching_answers_leave_no_flag_and_no_record_means_no_prefill(app, make_applicant) -> None:
    who = make_applicant()
    engine().fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    engine().fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    db.session.expire_all()
    assert "registry_mismatch" not in db.session.get(Application, who.application_id).data

    stranger = make_applicant(in_registry=False)
    engine().fire(stranger.application_id, "accept_pledge", stranger.actor, {"agree": True})
    client = app.test_client()
    log_in_student(client, stranger)
    html = client.get("/application").get_data(as_text=True)
    assert 'name="college" value=""' in html and 'id="registry-prefill"' not in html

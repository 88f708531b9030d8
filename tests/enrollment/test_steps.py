"""Steps of §2.6–2.8 through the engine: basic info, 志愿 against the catalogue, the 学籍 report."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gzsb.bootstrap import vault
from gzsb.cli.demo import CATALOG_CSV
from gzsb.common.security import basic_info_of
from gzsb.enrollment.catalog import import_catalog
from gzsb.enrollment.service import latest_correction
from gzsb.enrollment.steps import ETHNIC_GROUPS, preference_label
from gzsb.errors import GuardRefused, InvalidInput
from gzsb.extensions import db
from gzsb.models import Application, CorrectionRequest, HistoryEvent
from tests.support import student_payload

EVIDENCE = ["a" * 32 + ".jpg", "b" * 32 + ".png"]


@pytest.fixture
def catalogue(app) -> None:
    assert import_catalog(db.session, CATALOG_CSV).ok


def data(who) -> dict:
    db.session.expire_all()
    return db.session.get(Application, who.application_id).data


def to_preferences(eng, who, *, check: bool = True) -> None:
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    if check:
        eng.fire(who.application_id, "check_xueji", who.actor, {})
        eng.fire(who.application_id, "confirm_xueji", who.actor, {"answer": "correct"})


def submit(eng, who, *pairs: tuple[str, str]):
    choices = [{"institution": i, "major": m} for i, m in pairs]
    return eng.fire(who.application_id, "submit_preferences", who.actor, {"choices": choices})


def refused(eng, who, *pairs: tuple[str, str]) -> dict:
    with pytest.raises(InvalidInput) as invalid:
        submit(eng, who, *pairs)
    assert db.session.get(Application, who.application_id).state == "preferences"
    return invalid.value.fields


# --------------------------------------------------------------------------- basic info


def test_basic_info_knows_the_56_ethnic_groups_and_derives_the_birth_date(app, make_applicant, eng) -> None:
    assert len(ETHNIC_GROUPS) == 56 == len(set(ETHNIC_GROUPS))
    who = make_applicant()
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    with pytest.raises(InvalidInput) as invalid:
        eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who, ethnicity="火星族"))
    assert invalid.value.fields == {"ethnicity": ["请选择民族"]}
    payload = student_payload(who, ethnicity="朝鲜族", birth_date="")
    eng.fire(who.application_id, "submit_basic_info", who.actor, payload)
    info = basic_info_of(data(who), vault())
    number = info["id_number"]
    assert info["birth_date"] == f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
    assert info["ethnicity"] == "朝鲜族"


def test_basic_info_requires_a_known_confirmation_point(app, make_applicant, eng) -> None:
    who = make_applicant()
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    with pytest.raises(InvalidInput) as invalid:
        eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who, confirmation_point=""))
    assert invalid.value.fields == {"confirmation_point": ["请选择确认点"]}
    with pytest.raises(InvalidInput) as invalid:
        eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who, confirmation_point="XX99"))
    assert invalid.value.fields == {"confirmation_point": ["请选择确认点"]}


# -------------------------------------------------------------------------------- 志愿


def test_preferences_are_checked_against_the_catalogue(app, catalogue, make_applicant, eng) -> None:
    who = make_applicant()
    to_preferences(eng, who)
    assert refused(eng, who, ("10060", "080901"), ("10066", "080902"), ("10060", "080901")) == {
        "choices": {2: {"major": [f"志愿不能重复（与{preference_label(0)}相同）"]}}
    }
    assert refused(eng, who, ("10060", "080901"), ("10069", "080901")) == {
        "choices": {1: {"major": ["所选专业不属于该院校，请重新选择"]}}
    }
    assert refused(eng, who, ("99999", "080901")) == {
        "choices": {0: {"institution": ["所选院校不在招生院校目录中，请重新选择"]}}
    }
    assert refused(eng, who, ("10060", "999999")) == {"choices": {0: {"major": ["所选专业不属于该院校，请重新选择"]}}}
    five = [("10060", "080901"), ("10060", "080902"), ("10066", "080901"), ("10066", "080902"), ("10070", "020101")]
    assert refused(eng, who, *five) == {"choices": ["最多可填报4个志愿"]}
    assert refused(eng, who) == {"choices": ["请至少填写志愿一"]}
    assert refused(eng, who, ("10060", "")) == {"choices": {0: {"major": ["请填写专业"]}}}

    fired = submit(eng, who, ("10060", "080901"), ("10792", "120105"))
    assert fired.to_state == "confirming"
    assert data(who)["preferences"] == [
        {
            "institution": "10060",
            "institution_name": "天津理工大学",
            "major": "080901",
            "major_name": "计算机科学与技术",
        },
        {"institution": "10792", "institution_name": "天津城建大学", "major": "120105", "major_name": "工程造价"},
    ]


@pytest.mark.empty_catalogue
def test_without_any_catalogue_every_choice_is_refused(app, make_applicant, eng) -> None:
    # Before `flask catalog import` nothing can be checked, so nothing is accepted.
    who = make_applicant()
    to_preferences(eng, who)
    assert refused(eng, who, ("10060", "080901"), ("10066", "080902")) == {
        "choices": {
            0: {"institution": ["所选院校不在招生院校目录中，请重新选择"]},
            1: {"institution": ["所选院校不在招生院校目录中，请重新选择"]},
        }
    }
    assert import_catalog(db.session, CATALOG_CSV).ok
    assert submit(eng, who, ("10060", "080901")).to_state == "confirming"


def test_xueji_buttons_keep_the_typed_preferences_as_a_draft(app, catalogue, make_applicant, eng) -> None:
    who = make_applicant()
    to_preferences(eng, who, check=False)
    draft = [{"institution": "10060", "major": "080901"}, {"institution": "", "major": ""}]
    eng.fire(who.application_id, "check_xueji", who.actor, {"choices": draft})
    assert data(who)["preferences_draft"] == [{"institution": "10060", "major": "080901"}]
    with pytest.raises(GuardRefused):  # the record must be confirmed or reported first
        submit(eng, who, ("10060", "080901"))
    assert data(who)["preferences_draft"] == [{"institution": "10060", "major": "080901"}]
    eng.fire(who.application_id, "confirm_xueji", who.actor, {"answer": "correct"})
    submit(eng, who, ("10060", "080901"))
    assert "preferences_draft" not in data(who)


# ------------------------------------------------------------------------ 学籍 report


def correction_requests(who) -> list[CorrectionRequest]:
    return list(
        db.session.scalars(
            select(CorrectionRequest)
            .where(CorrectionRequest.application_id == who.application_id)
            .order_by(CorrectionRequest.id)
        )
    )


def test_report_opens_a_correction_request_in_the_same_transaction(app, make_applicant, eng) -> None:
    who = make_applicant()
    to_preferences(eng, who, check=False)
    eng.fire(who.application_id, "check_xueji", who.actor, {})
    application = db.session.get(Application, who.application_id)
    with pytest.raises(InvalidInput) as invalid:
        eng.fire(who.application_id, "report_xueji_error", who.actor, {"problem": "毕业年份有误"})
    assert invalid.value.fields == {"evidence": ["请上传证明材料图片"]}
    with pytest.raises(InvalidInput) as invalid:
        payload = {"problem": "毕业年份有误", "evidence": ["../../etc/passwd"]}
        eng.fire(who.application_id, "report_xueji_error", who.actor, payload)
    assert invalid.value.fields == {"evidence": {0: ["证明材料无效，请重新上传"]}}
    assert correction_requests(who) == []

    eng.fire(
        who.application_id, "report_xueji_error", who.actor, {"problem": "毕业年份应为2026年", "evidence": EVIDENCE}
    )
    (request,) = correction_requests(who)
    xueji = data(who)["xueji"]
    assert request.status == "open" and request.problem == "毕业年份应为2026年"
    assert request.registry_record_id == xueji["record"]["id"]
    assert request.confirmation_point_id == application.confirmation_point_id is not None
    assert request.evidence == [f"evidence/{application.uid}/{name}" for name in EVIDENCE]
    assert xueji["answer"] == "wrong" and "report" not in xueji  # the request row is the one record
    assert latest_correction(db.session, application.id)["request_id"] == request.id
    payload = db.session.scalars(select(HistoryEvent.payload).where(HistoryEvent.event == "report_xueji_error")).one()
    assert f'"correction_request":{request.id}' in payload

    # Reporting again supersedes; confirming after all withdraws the open request.
    eng.fire(who.application_id, "report_xueji_error", who.actor, {"problem": "专业名称有误", "evidence": EVIDENCE[:1]})
    assert [r.status for r in correction_requests(who)] == ["superseded", "open"]
    eng.fire(who.application_id, "confirm_xueji", who.actor, {"answer": "correct"})
    assert [r.status for r in correction_requests(who)] == ["superseded", "withdrawn"]
    assert data(who)["xueji"]["answer"] == "correct"


def test_refused_report_leaves_no_request(app, make_applicant, eng) -> None:
    who = make_applicant(in_registry=False)
    to_preferences(eng, who, check=False)
    eng.fire(who.application_id, "check_xueji", who.actor, {})
    with pytest.raises(GuardRefused):
        eng.fire(who.application_id, "report_xueji_error", who.actor, {"problem": "x", "evidence": EVIDENCE})
    assert db.session.scalar(select(func.count()).select_from(CorrectionRequest)) == 0
    assert data(who)["xueji"]["status"] == "not_found"

"""The journey pages in the Flask test client: 承诺书, 基本信息, 填写志愿 + 学籍 (photo, report),
信息确认; the catalogue search, the photo and evidence routes and their access control."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select

from gzsb.bootstrap import engine, storage, vault
from gzsb.cli.demo import CATALOG_CSV, demo_student, portrait_png
from gzsb.common.security import mask_id_number
from gzsb.enrollment.catalog import import_catalog
from gzsb.enrollment.service import latest_correction
from gzsb.extensions import db
from gzsb.models import Application, CorrectionRequest, RegistryRecord
from tests.support import csrf_token, log_in_student, student_payload


@pytest.fixture
def journey(app):
    """The catalogue imported (uploads go to the test app's in-memory storage)."""
    assert import_catalog(db.session, CATALOG_CSV).ok
    return app


def token(client, path: str = "/application") -> str:
    return csrf_token(client, path)


login = log_in_student


def version(who) -> int:
    db.session.expire_all()
    return db.session.get(Application, who.application_id).version


def application(who) -> Application:
    db.session.expire_all()
    return db.session.get(Application, who.application_id)


def post(client, who, event: str, data: dict | None = None, **kw):
    form = {"csrf_token": token(client), "version": version(who), **(data or {})}
    return client.post(f"/application/events/{event}", data=form, **kw)


def give_photo(who) -> RegistryRecord:
    record = db.session.scalars(
        select(RegistryRecord).where(RegistryRecord.id_number_index == vault().index(demo_student(who.index).id_number))
    ).one()
    record.photo = portrait_png(who.index)
    db.session.commit()
    return record


def image(kind: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (60, 80), "white").save(out, kind)
    return out.getvalue()


def at_preferences(who, *, check: bool = False) -> None:
    eng = engine()
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    eng.fire(who.application_id, "submit_basic_info", who.actor, student_payload(who))
    if check:
        eng.fire(who.application_id, "check_xueji", who.actor, {})


CHOICE_FORM = {
    "choices.0.institution": "10060",
    "choices.0.major": "080901",
    "choices.1.institution": "",
    "choices.1.major": "",
    "choices.2.institution": "10066",
    "choices.2.major": "080902",
}


# ----------------------------------------------------------------------------- pages


def test_pledge_page_shows_the_pledge_and_needs_the_tick(journey, make_applicant) -> None:
    who = make_applicant()
    client = journey.test_client()
    login(client, who)
    html = client.get("/application").get_data(as_text=True)
    assert "考试承诺书" in html and "国家教育考试违规处理办法" in html
    assert 'type="checkbox" name="agree"' in html and ">我遵守</button>" in html
    refused = post(client, who, "accept_pledge")
    assert refused.status_code == 422 and "请先阅读并勾选考试承诺书" in refused.get_data(as_text=True)
    assert post(client, who, "accept_pledge", {"agree": "true"}).status_code == 302
    assert application(who).state == "pledged"


def test_basic_info_form_is_prefilled_validated_and_prefilled_again_on_return(journey, make_applicant) -> None:
    who = make_applicant()
    engine().fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    client = journey.test_client()
    login(client, who)
    student = demo_student(who.index)
    html = client.get("/application").get_data(as_text=True)
    assert f'name="id_number" value="{student.id_number}" readonly' in html
    number = student.id_number
    assert f'name="birth_date" value="{number[6:10]}-{number[10:12]}-{number[12:14]}" readonly' in html
    assert f'name="name" value="{student.name}"' in html and f'name="mobile" value="{student.mobile}"' in html
    assert html.count("<option>") >= 56 + 6 + 5  # 民族, 政治面貌, 考生类别
    assert '<option value="NK01">南开区招生考试中心</option>' in html
    for label in ("姓名", "性别", "民族", "政治面貌", "身份证号", "出生日期", "手机", "通讯地址", "邮编"):
        assert f'{label}<b class="req">*</b>' in html
    assert (
        "毕业院校（高职）<b" in html and "考生类别<b" in html and "确认点<b" in html and ">提交并继续</button>" in html
    )

    form = {k: str(v) for k, v in student_payload(who, postcode="30007", ethnicity="").items()}
    bad = post(client, who, "submit_basic_info", form)
    page = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert 'id="e-postcode">邮编应为6位数字' in page and 'id="e-ethnicity">请选择民族' in page
    assert 'value="天津市南开区卫津路92号"' in page and 'value="30007"' in page  # nothing typed is lost

    form.update(postcode="300072", ethnicity="回族", address="天津市河西区友谊路1号")
    assert post(client, who, "submit_basic_info", form).status_code == 302
    at = application(who)
    assert at.state == "preferences" and at.data["basic_info"]["ethnicity"] == "回族"

    # 返回修改 (from 信息确认) brings the saved answers back into the form.
    eng = engine()
    eng.fire(who.application_id, "check_xueji", who.actor, {})
    eng.fire(who.application_id, "confirm_xueji", who.actor, {"answer": "correct"})
    eng.fire(
        who.application_id, "submit_preferences", who.actor, {"choices": [{"institution": "10060", "major": "080901"}]}
    )
    assert post(client, who, "back_to_edit").status_code == 302
    html = client.get("/application").get_data(as_text=True)
    assert 'value="天津市河西区友谊路1号"' in html and "<option selected>回族</option>" in html


def test_preferences_page_walks_to_confirmation(journey, make_applicant) -> None:
    who = make_applicant()
    at_preferences(who)
    record = give_photo(who)
    client = journey.test_client()
    login(client, who)
    html = client.get("/application").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in html and 'id="catalog-dialog"' in html and "journey.js" in html
    assert html.count('class="choice') == 4 and "志愿一<b" in html and "志愿四" in html
    assert '<option value="10060">天津理工大学（10060）</option>' in html
    assert ">点击验证学籍/学历</button>" in html

    # 验证学籍/学历 from the same form: the typed 志愿 come back (kept as a draft).
    assert post(client, who, "check_xueji", CHOICE_FORM).status_code == 302
    html = client.get("/application").get_data(as_text=True)
    assert f'src="/application/xueji/photo/{record.id}"' in html
    assert "天津职业大学" in html and mask_id_number(demo_student(who.index).id_number) in html
    assert ">信息正确</button>" in html and "<summary>信息有误" in html
    assert html.count("selected>天津职业技术师范大学（10066）") == 1  # as typed, in row 2 (the empty row dropped)
    assert 'data-institution="10066" selected>软件工程（080902）' in html

    # A duplicate: Chinese message next to the row, the rows as typed.
    dup = dict(CHOICE_FORM, **{"choices.2.institution": "10060", "choices.2.major": "080901"})
    post(client, who, "confirm_xueji", {"answer": "correct"})
    refused = post(client, who, "submit_preferences", dup)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert 'id="e-c1-major">志愿不能重复（与志愿一相同）' in page
    # A major of another institution.
    wrong = dict(CHOICE_FORM, **{"choices.2.institution": "10068", "choices.2.major": "080902"})
    page = post(client, who, "submit_preferences", wrong).get_data(as_text=True)
    assert 'id="e-c1-major">所选专业不属于该院校，请重新选择' in page

    assert post(client, who, "submit_preferences", CHOICE_FORM).status_code == 302
    assert application(who).state == "confirming"
    html = client.get("/application").get_data(as_text=True)
    student = demo_student(who.index)
    # The student checks their own ID number and mobile: shown whole to them (issue 16).
    assert f'id="own-id-number">{student.id_number}<' in html
    assert f'id="own-mobile">{student.mobile}<' in html
    assert "天津理工大学" in html and "计算机科学与技术" in html and "天津职业技术师范大学" in html
    assert "软件工程" in html and "您已确认信息正确" in html and "南开区招生考试中心" in html
    for button in ("返回修改</button>", "完成信息采集去身份认证</button>", ">返回首页</a>"):
        assert button in html
    assert post(client, who, "confirm_info").status_code == 302
    assert application(who).state == "identity_pending"


def test_student_not_in_the_registry_is_told_about_the_report_later(journey, make_applicant) -> None:
    who = make_applicant(in_registry=False)
    at_preferences(who, check=True)
    client = journey.test_client()
    login(client, who)
    html = client.get("/application").get_data(as_text=True)
    assert "未查询到您的学籍/学历信息" in html and "学历认证报告" in html
    assert "信息正确</button>" not in html and "<summary>信息有误" not in html
    assert post(client, who, "submit_preferences", CHOICE_FORM).status_code == 302
    assert "网上支付后需上传学历认证报告" in client.get("/application").get_data(as_text=True)


# ------------------------------------------------------------------- 学籍 report


def report(client, who, files: list[tuple[bytes, str]], problem: str = "毕业年份应为2026年", **extra):
    data = {
        "csrf_token": token(client),
        "version": version(who),
        "problem": problem,
        **CHOICE_FORM,
        "evidence": [(io.BytesIO(content), name) for content, name in files],
        **extra,
    }
    return client.post("/application/xueji/report", data=data, content_type="multipart/form-data")


def test_report_stores_evidence_and_opens_a_correction_request(journey, make_applicant) -> None:
    who = make_applicant()
    at_preferences(who, check=True)
    client = journey.test_client()
    login(client, who)
    response = report(client, who, [(image("PNG"), "毕业证.png"), (image("JPEG"), "学籍证明.JPG")])
    assert response.status_code == 302, response.get_data(as_text=True)
    at = application(who)
    (request,) = db.session.scalars(select(CorrectionRequest)).all()
    assert request.application_id == at.id and request.status == "open"
    names = latest_correction(db.session, at.id)["evidence"]
    assert [n.rsplit(".", 1)[1] for n in names] == ["png", "jpg"]
    stored = [key for key in storage().files if key.startswith(f"evidence/{at.uid}/")]
    assert sorted(key.rsplit("/", 1)[1] for key in stored) == sorted(names)
    assert request.evidence == [f"evidence/{at.uid}/{n}" for n in names]
    assert at.data["preferences_draft"][1] == {"institution": "10066", "major": "080902"}

    html = client.get("/application").get_data(as_text=True)
    assert "已提交学籍/学历信息更正申请" in html and f"/application/xueji/evidence/{names[0]}" in html
    served = client.get(f"/application/xueji/evidence/{names[0]}")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Disposition"].startswith("attachment")

    # Another student gets nothing of it, whatever they try.
    other = make_applicant()
    at_preferences(other, check=True)
    intruder = journey.test_client()
    login(intruder, other)
    assert intruder.get(f"/application/xueji/evidence/{names[0]}").status_code == 404
    assert intruder.get("/application/xueji/evidence/..%2F..%2Fgzsb.sqlite3").status_code == 404


def test_bad_evidence_is_refused_in_chinese_and_nothing_is_kept(journey, make_applicant) -> None:
    who = make_applicant()
    at_preferences(who, check=True)
    client = journey.test_client()
    login(client, who)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    response = report(client, who, [(svg, "photo.png")], problem="")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "photo.png：仅支持JPG或PNG格式的图片" in html and 'id="e-problem">请填写错误说明' in html
    assert 'value="10066" selected' in html  # the 志愿 typed are still there
    nothing = report(client, who, [])
    assert nothing.status_code == 422 and "请上传证明材料图片" in nothing.get_data(as_text=True)
    assert db.session.scalars(select(CorrectionRequest)).all() == []
    assert not [key for key in storage().files if key.startswith("evidence/")]


def test_report_needs_csrf_and_caps_the_size_before_reading(journey, make_applicant, monkeypatch) -> None:
    from gzsb.enrollment import catalog_views as catalog

    who = make_applicant()
    at_preferences(who, check=True)
    client = journey.test_client()
    login(client, who)
    no_token = client.post(
        "/application/xueji/report",
        data={"problem": "x", "evidence": [(io.BytesIO(image()), "a.png")]},
        content_type="multipart/form-data",
    )
    assert no_token.status_code == 400
    monkeypatch.setattr(catalog, "REPORT_MAX_BYTES", 4096)
    huge = report(client, who, [(image("PNG") + b"\0" * 5000, "big.png")])
    assert huge.status_code == 413 and "上传的图片总大小不能超过" in huge.get_data(as_text=True)
    monkeypatch.setattr(catalog, "REPORT_MAX_BYTES", 1024 * 1024)
    monkeypatch.setattr(catalog, "EVIDENCE_MAX_BYTES", 100)
    one = report(client, who, [(image("PNG"), "one.png")])
    assert one.status_code == 422 and "one.png：图片不能超过" in one.get_data(as_text=True)
    assert db.session.scalars(select(CorrectionRequest)).all() == []


# ------------------------------------------------------------- photo and catalogue


def test_registry_photo_only_for_its_own_student(journey, make_applicant) -> None:
    who, other = make_applicant(), make_applicant()
    mine, theirs = give_photo(who), give_photo(other)
    client = journey.test_client()
    login(client, who)
    photo = client.get(f"/application/xueji/photo/{mine.id}")
    assert photo.status_code == 200 and photo.mimetype == "image/png" and photo.data.startswith(b"\x89PNG")
    assert photo.headers["X-Content-Type-Options"] == "nosniff"
    assert photo.headers["Cache-Control"] == "private, no-store"
    assert client.get(f"/application/xueji/photo/{theirs.id}").status_code == 404
    assert client.get("/application/xueji/photo/999999").status_code == 404
    assert journey.test_client().get(f"/application/xueji/photo/{mine.id}").status_code == 302  # to the login


def test_catalogue_search_is_json_for_logged_in_users(journey, make_applicant) -> None:
    who = make_applicant()
    client = journey.test_client()
    assert client.get("/catalog/search?q=软件").status_code == 302
    login(client, who)
    body = client.get("/catalog/search?q=城建 工程造价").get_json()
    assert body == {
        "results": [
            {
                "institution": "10792",
                "institution_name": "天津城建大学",
                "major": "120105",
                "major_name": "工程造价",
                "places": 80,
            }
        ],
        "truncated": False,
    }
    assert client.get("/catalog/search").get_json()["truncated"] is True


@pytest.mark.empty_catalogue
def test_without_a_catalogue_the_page_says_so_and_every_choice_is_refused(app, make_applicant) -> None:
    who = make_applicant()
    at_preferences(who, check=True)
    engine().fire(who.application_id, "confirm_xueji", who.actor, {"answer": "correct"})
    client = app.test_client()
    login(client, who)
    assert "招生院校目录尚未发布，暂时无法填报志愿" in client.get("/application").get_data(as_text=True)
    response = post(client, who, "submit_preferences", {"choices.0.institution": "10060", "choices.0.major": "080901"})
    assert response.status_code == 422
    assert "所选院校不在招生院校目录中，请重新选择" in response.get_data(as_text=True)
    assert application(who).state == "preferences"

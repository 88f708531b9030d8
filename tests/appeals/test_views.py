"""账号申诉 through the browser's eyes (Flask test client, real CSRF tokens, SMS read from
/dev/sms): an appeal approved and one rejected, decided from the staff queue; the SMS code
sent only for valid input; images stored encrypted; retention; one decider wins."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from gzsb.appeals import files
from gzsb.bootstrap import storage, vault
from gzsb.extensions import db
from gzsb.models import Account, AppealCase, AppealEvent, AppealFile, Application, HistoryEvent, OtpCode, SmsMessage
from gzsb.worker.retention import sweep
from tests.accounts.test_views import csrf, field_error, login
from tests.review_support import make_staff
from tests.support import csrf_token, demo_student, log_in, to_confirming

OWNER = "13912349876"
CODE = re.compile(r"验证码是(\d{6})")
PASSWORD = re.compile(r"初始密码([A-Za-z0-9]+)，")


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (320, 200)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


def newest_sms(client, masked: str, pattern: re.Pattern[str]) -> str:
    page = client.get("/dev/sms").get_data(as_text=True)
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.DOTALL):
        if masked in row and pattern.search(row):
            return pattern.search(row).group(1)
    raise AssertionError(f"no matching SMS to {masked}")


def appeal(client, name: str, id_number: str, mobile: str = OWNER) -> str:
    """Steps 1 and 2 of the appellant: the case number shown at the end."""
    data = {"name": name, "id_number": id_number, "mobile": mobile, "code": "", "csrf_token": csrf(client, "/appeal")}
    assert client.post("/appeal/code", data=data).status_code == 200
    data["code"] = newest_sms(client, "139****9876", CODE)
    answer = client.post("/appeal", data=data)
    assert answer.status_code == 302 and answer.headers["Location"] == "/appeal/images", answer.get_data(as_text=True)
    token = csrf_token(client, "/appeal/images")
    sent = {
        "csrf_token": token,
        "id_front": (io.BytesIO(jpeg((200, 10, 10))), "front.jpg"),
        "id_back": (io.BytesIO(jpeg((10, 200, 10))), "back.jpg"),
        "id_holding": (io.BytesIO(jpeg((10, 10, 200))), "holding.jpg"),
    }
    done = client.post("/appeal/images", data=sent, content_type="multipart/form-data")
    html = done.get_data(as_text=True)
    assert done.status_code == 200 and "申诉已提交" in html, html
    return re.search(r'id="case-number">(SS\d+)<', html).group(1)


@pytest.fixture
def squatted(app: Flask, eng, make_applicant):
    """Someone registered the owner's ID number and got as far as 信息确认 (point NK01)."""
    who = make_applicant()
    to_confirming(eng, who)
    return who


def staff_client(app: Flask):
    staff = make_staff("NK01")
    client = app.test_client()
    log_in(client, vault().decrypt(staff.id_number_enc))
    return client


def test_approved_appeal_disables_the_old_account_freezes_its_application_and_opens_a_new_one(
    app: Flask, squatted
) -> None:
    person = demo_student(squatted.index)
    squatter = app.test_client()
    log_in(squatter, person.id_number, squatted.password)
    owner = app.test_client()
    number = appeal(owner, "张真人", person.id_number)
    case = db.session.scalars(select(AppealCase).where(AppealCase.number == number)).one()
    assert case.status == "pending" and case.due_on is not None

    # The images are stored encrypted: nothing in storage is a JPEG, yet they open for staff.
    stored = files.live_files(db.session, case)
    assert set(stored) == {"id_front", "id_back", "id_holding"}
    assert all(not storage().get(row.storage_key).startswith(b"\xff\xd8") for row in stored.values())

    decider = staff_client(app)
    queue = decider.get("/appeals/queue").get_data(as_text=True)
    assert number in queue and "张真人" in queue
    page = decider.get(f"/appeals/{number}").get_data(as_text=True)
    assert "信息确认" in page and person.id_number not in page  # the old application's state; masked
    image = decider.get(f"/appeals/{number}/images/{stored['id_front'].uid}")
    assert image.status_code == 200 and image.data.startswith(b"\xff\xd8")
    assert image.headers["X-Content-Type-Options"] == "nosniff"

    answer = decider.post(f"/appeals/{number}/approve", data={"csrf_token": csrf_token(decider, f"/appeals/{number}")})
    assert answer.status_code == 302

    # The old account: its session ended, its password no longer opens anything.
    assert squatter.get("/process").status_code == 302
    assert login(app.test_client(), person.id_number, squatted.password).status_code == 401
    # Its mobile is freed too (retired index): the holder can register with their own ID number.
    assert login(app.test_client(), person.mobile, squatted.password).status_code == 401
    old = db.session.get(Account, squatted.account_id)
    assert old.disabled_at is not None

    # Its application is frozen, the freeze is the last event of its history, and it verifies.
    frozen = db.session.get(Application, squatted.application_id)
    last = db.session.scalars(
        select(HistoryEvent).where(HistoryEvent.application_id == frozen.id).order_by(HistoryEvent.seq.desc())
    ).first()
    assert frozen.state == "frozen" and last.event == "freeze_for_appeal" and number in last.payload
    verified = app.test_cli_runner().invoke(args=["audit", "verify", "--application", frozen.uid])
    assert verified.exit_code == 0 and "0 failed" in verified.output, verified.output

    # The owner logs in with the one-time password from the SMS and must choose their own.
    password = newest_sms(owner, "139****9876", PASSWORD)
    first = login(app.test_client(), person.id_number, password)
    assert first.status_code == 302 and first.headers["Location"] == "/account/password"
    new = db.session.get(Account, db.session.get(AppealCase, case.id).new_account_id)
    assert new.id != old.id and new.must_change_password and new.disabled_at is None

    # Every step is on record, and the appellant sees the outcome.
    actions = list(db.session.scalars(select(AppealEvent.action).where(AppealEvent.case_id == case.id)))
    assert actions == [
        "mobile_verified", "submitted", "granted", "old_account_disabled", "application_frozen", "account_issued",
    ]  # fmt: skip
    status = owner.post(
        "/appeal/status", data={"number": number, "mobile": OWNER, "csrf_token": csrf(owner, "/appeal/status")}
    )
    assert status.status_code == 200 and "申诉通过" in status.get_data(as_text=True)


def test_rejected_appeal_shows_the_reason_and_changes_nothing_else(app: Flask, squatted) -> None:
    person = demo_student(squatted.index)
    owner = app.test_client()
    number = appeal(owner, "张真人", person.id_number)
    decider = staff_client(app)
    token = csrf_token(decider, f"/appeals/{number}")
    refused = decider.post(f"/appeals/{number}/reject", data={"reason": " ", "csrf_token": token})
    assert refused.status_code == 422 and field_error(refused.get_data(as_text=True), "reason") == "请填写不通过原因"
    reason = "手持身份证照片看不清证件号码"
    assert decider.post(f"/appeals/{number}/reject", data={"reason": reason, "csrf_token": token}).status_code == 302

    status = owner.post(
        "/appeal/status", data={"number": number, "mobile": OWNER, "csrf_token": csrf(owner, "/appeal/status")}
    )
    html = status.get_data(as_text=True)
    assert "申诉未通过" in html and reason in html
    # The account that holds the ID number goes on as before.
    assert login(app.test_client(), person.id_number, squatted.password).status_code == 302
    assert db.session.get(Application, squatted.application_id).state == "confirming"
    # Decided: the images are kept only the shorter period after the decision, then swept.
    case = db.session.scalars(select(AppealCase).where(AppealCase.number == number)).one()
    now = app.extensions["gzsb.clock"]()
    assert sweep(db.session, storage(), now, app.config)["appeals"] == 0
    later = now + timedelta(days=app.config["APPEAL_FILE_DAYS_AFTER_DECISION"] + 1)
    assert sweep(db.session, storage(), later, app.config)["appeals"] == 3
    assert files.live_files(db.session, case) == {}
    assert all(not storage().exists(row.storage_key) for row in db.session.scalars(select(AppealFile)))


def test_the_status_page_needs_the_case_number_and_the_mobile(app: Flask, squatted) -> None:
    owner = app.test_client()
    number = appeal(owner, "张真人", demo_student(squatted.index).id_number)
    wrong = owner.post(
        "/appeal/status", data={"number": number, "mobile": "13912340000", "csrf_token": csrf(owner, "/appeal/status")}
    )
    assert wrong.status_code == 422 and "处理状态" not in wrong.get_data(as_text=True)
    right = owner.post(
        "/appeal/status", data={"number": number, "mobile": OWNER, "csrf_token": csrf(owner, "/appeal/status")}
    )
    html = right.get_data(as_text=True)
    assert "审核中" in html and "前" in html and re.search(r'id="due">\d{4}年\d{2}月\d{2}日前', html)


def test_a_second_decider_is_told_the_case_is_taken(app: Flask, squatted) -> None:
    number = appeal(app.test_client(), "张真人", demo_student(squatted.index).id_number)
    first, second = staff_client(app), staff_client(app)
    tokens = [csrf_token(c, f"/appeals/{number}") for c in (first, second)]
    assert first.post(f"/appeals/{number}/approve", data={"csrf_token": tokens[0]}).status_code == 302
    late = second.post(f"/appeals/{number}/reject", data={"reason": "不符", "csrf_token": tokens[1]})
    assert late.status_code == 409 and "已被其他工作人员处理" in late.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Account).where(Account.role == "student")) == 2


def test_staff_of_another_point_do_not_see_the_case(app: Flask, squatted) -> None:
    number = appeal(app.test_client(), "张真人", demo_student(squatted.index).id_number)
    other = make_staff("HX01", name="李老师")
    client = app.test_client()
    log_in(client, vault().decrypt(other.id_number_enc))
    assert number not in client.get("/appeals/queue").get_data(as_text=True)
    assert client.get(f"/appeals/{number}").status_code == 404


def test_the_registration_page_offers_an_appeal_when_the_id_number_is_taken(app: Flask, squatted) -> None:
    from tests.accounts.test_views import register, send_register_code, sms_code

    person = demo_student(squatted.index)
    client = app.test_client()
    fields = {"id_number": person.id_number, "id_number2": person.id_number, "mobile": OWNER}
    assert send_register_code(client, **fields).status_code == 200
    taken = register(client, **fields, code=sms_code(client, "139****9876"))
    html = taken.get_data(as_text=True)
    assert taken.status_code == 409 and 'id="appeal-offer"' in html and 'href="/appeal"' in html


BAD_IDS = {
    "checksum": "120105200403150029",
    "area": "990105200403150021",
    "birth": "120105209913150021",
    "length": "12010520040315002",
    "digits": "１２０１０５２００４０３１５００２X".replace("X", "١"),
}


@pytest.mark.parametrize("path", ["/register/code", "/appeal/code"])
@pytest.mark.parametrize("kind", sorted(BAD_IDS))
def test_no_sms_code_is_sent_for_an_invalid_id_number(app: Flask, path: str, kind: str) -> None:
    client = app.test_client()
    bad = BAD_IDS[kind]
    data = {"name": "张真人", "id_number": bad, "id_number2": bad, "mobile": OWNER, "code": ""}
    answer = client.post(path, data={**data, "csrf_token": csrf(client, path.removesuffix("/code"))})
    assert answer.status_code == 422 and field_error(answer.get_data(as_text=True), "id_number")
    assert db.session.scalar(select(func.count()).select_from(OtpCode)) == 0
    assert db.session.scalar(select(func.count()).select_from(SmsMessage)) == 0


def test_an_appeal_for_a_free_id_number_or_the_holders_own_mobile_is_refused(app: Flask, squatted) -> None:
    person = demo_student(squatted.index)
    for number, mobile, field, message in (
        ("120105200403150021", OWNER, "id_number", "该身份证号尚未注册"),
        (person.id_number, person.mobile, "mobile", "请使用【找回密码】"),
    ):
        client = app.test_client()
        data = {
            "name": "张真人",
            "id_number": number,
            "mobile": mobile,
            "code": "",
            "csrf_token": csrf(client, "/appeal"),
        }
        assert client.post("/appeal/code", data=data).status_code == 200
        masked = f"{mobile[:3]}****{mobile[-4:]}"
        data["code"] = newest_sms(client, masked, CODE)
        answer = client.post("/appeal", data=data)
        assert answer.status_code == 409 and message in field_error(answer.get_data(as_text=True), field)
    assert db.session.scalar(select(func.count()).select_from(AppealCase)) == 0

"""The 报名表 service: content and digest, serials, verification codes, render and cache."""

from __future__ import annotations

import itertools
import re
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from gzsb.adapters.pdf import PdfError, WkhtmltopdfRenderer
from gzsb.bootstrap import engine as runtime_engine
from gzsb.bootstrap import storage
from gzsb.cli.demo import demo_student, portrait_png
from gzsb.common.uploads import accept_image, discard, store_image
from gzsb.extensions import db
from gzsb.models import Application, ConfirmationPoint, RegistrationForm, Upload
from gzsb.regform import content
from gzsb.regform import service as forms
from tests.support import new_applicant, order_of, pay, to_confirming, to_payment

KEY = "test-form-key"


@pytest.fixture(scope="module")
def renderer() -> WkhtmltopdfRenderer:
    return WkhtmltopdfRenderer(timeout=60)


def approve(eng, who, *, photo: bool = False, **info: str) -> Application:
    """Drive the applicant to 报名完成 (with a stored 证件照 if asked); ``info`` then overrides
    basic information fields, as a registrar's correction would."""
    to_payment(eng, who)
    if photo:
        attach_photo(who.application_id)
    pay(eng, who)
    record = db.session.get(Application, who.application_id)
    if info:
        correct(record, **info)
    return record


def correct(record: Application, **info: str) -> None:
    data = dict(record.data)
    data["basic_info"] = {**data["basic_info"], **info}
    record.data = data
    if "confirmation_point" in info:
        point = db.session.scalars(
            select(ConfirmationPoint).where(ConfirmationPoint.code == info["confirmation_point"])
        )
        record.confirmation_point_id = point.one().id
    db.session.commit()


def attach_photo(application_id: int) -> str:
    """A 证件照 stored the way the identity upload stores it; its upload uid in the data."""
    record = db.session.get(Application, application_id)
    image = accept_image(portrait_png(7), max_bytes=5_000_000, max_pixels=40_000_000)
    upload = store_image(
        db.session, storage(), application_id=record.id, application_uid=record.uid, kind="photo", image=image
    )
    data = dict(record.data)
    data["identity"] = {**data.get("identity", {}), "photo": upload.uid}
    record.data = data
    db.session.commit()
    return upload.uid


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "form.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout


def pdf_images(pdf: bytes, tmp_path: Path) -> int:
    path = tmp_path / "images.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True).stdout
    return len(out.strip().splitlines()) - 2


def render(app_id: int, renderer, clock) -> RegistrationForm:
    form = forms.render_form(db.session, app_id, renderer, storage(), clock())
    assert form is not None
    return form


def test_the_pdf_holds_the_students_data_serial_and_code(app, make_applicant, eng, clock, renderer, tmp_path) -> None:
    who = make_applicant()
    record = approve(eng, who, photo=True)
    form = render(record.id, renderer, clock)
    student = demo_student(who.index)
    text = pdf_text(form.pdf, tmp_path)
    assert re.fullmatch(r"2027-NK01-\d{6}", form.serial)
    for expected in (
        student.name,
        student.id_number,  # printed whole: the form is checked against the ID card
        student.mobile[:3] + "****" + student.mobile[-4:],
        "志愿一",
        "天津理工大学",
        "计算机科学与技术",
        "南开区招生考试中心",
        order_of(record.id)["number"],
        "160.00元",
        form.serial,
        content.format_code(content.verification_code(app.config["FORM_KEY"], form.serial, form.digest)),
        "2027年高职升本考试报名表",
    ):
        assert expected in text, expected
    assert student.mobile not in text
    assert pdf_images(form.pdf, tmp_path) == 2  # the photo and the QR code
    assert "照片" not in text


def test_missing_photo_prints_a_placeholder_box(app, make_applicant, eng, clock, renderer, tmp_path) -> None:
    who = make_applicant()
    record = approve(eng, who)
    # The 证件照 the identity step stored is gone (deleted from storage): a box, not an error.
    photo = db.session.scalars(select(Upload).where(Upload.uid == record.data["identity"]["photo"])).one()
    discard(storage(), photo, clock())
    db.session.commit()
    form = render(record.id, renderer, clock)
    text = pdf_text(form.pdf, tmp_path)
    assert "照片" in text
    assert pdf_images(form.pdf, tmp_path) == 1  # only the QR code


def test_names_missing_from_the_choices_come_from_the_catalogue(app, make_applicant, eng) -> None:
    who = make_applicant()
    record = approve(eng, who)
    # Recorded before the catalogue had names for them (codes only).
    data = dict(record.data)
    data["preferences"] = [{"institution": "10060", "major": "080901"}, {"institution": "99999", "major": "000000"}]
    record.data = data
    db.session.commit()
    first, unknown = content.form_content(db.session, record)["preferences"]
    assert (first["institution_name"], first["major_name"]) == ("天津理工大学", "计算机科学与技术")
    assert (unknown["institution"], unknown["institution_name"], unknown["major_name"]) == ("99999", "", "")


def test_user_text_prints_as_text_and_reads_no_local_file(app, make_applicant, eng, clock, renderer, tmp_path) -> None:
    who = make_applicant()
    evil = "<iframe src=file:///etc/passwd>"
    record = approve(eng, who, address=evil)
    html = forms.form_html(
        forms.printed_form(
            content.form_content(db.session, record), "2027-NK01-000009", "A" * 16, "http://x", None, clock()
        )
    )
    assert "&lt;iframe src=file:///etc/passwd&gt;" in html and "<iframe" not in html
    text = pdf_text(render(record.id, renderer, clock).pdf, tmp_path)
    assert evil in text
    assert "root:" not in text and "/bin/" not in text


def test_serials_are_assigned_once_per_application_and_count_up_per_point(app, make_applicant, eng, clock) -> None:
    first, second, other = make_applicant(), make_applicant(), make_applicant()
    a, b = approve(eng, first), approve(eng, second)
    c = approve(eng, other, confirmation_point="HX01")
    serials = [content.ensure_form(db.session, r, clock()).serial for r in (a, b, c)]
    numbers = [int(s.rsplit("-", 1)[1]) for s in serials]
    assert serials[0].startswith("2027-NK01-") and serials[1].startswith("2027-NK01-")
    assert numbers[1] == numbers[0] + 1
    assert serials[2] == "2027-HX01-000001"
    assert content.ensure_form(db.session, a, clock()).serial == serials[0]
    assert (
        db.session.scalar(select(RegistrationForm.serial).where(RegistrationForm.application_id == a.id)) == serials[0]
    )


def test_the_cache_holds_until_the_content_changes(app, make_applicant, eng, clock, renderer, tmp_path) -> None:
    who = make_applicant()
    record = approve(eng, who)
    form = render(record.id, renderer, clock)
    serial, first_pdf, first_digest = form.serial, form.pdf, form.digest
    clock.advance(minutes=5)
    again = render(record.id, renderer, clock)
    assert again.pdf == first_pdf and again.rendered_at == form.rendered_at  # not rendered again
    assert forms.fresh_pdf(db.session, record) is not None

    # A correction of the address (e.g. by the registrar) changes what the form must say.
    correct(record, address="天津市河西区友谊路1号")
    assert forms.fresh_pdf(db.session, record) is None
    changed = render(record.id, renderer, clock)
    assert changed.serial == serial and changed.digest != first_digest
    assert changed.issued == [first_digest, changed.digest]
    assert "天津市河西区友谊路1号" in pdf_text(changed.pdf, tmp_path)


def test_verification_tells_valid_changed_and_invalid(app, make_applicant, eng, clock, renderer) -> None:
    key = app.config["FORM_KEY"]
    who = make_applicant()
    record = approve(eng, who)
    form = render(record.id, renderer, clock)
    old_code = content.verification_code(key, form.serial, form.digest)

    verdict = content.verify(db.session, form.serial, content.format_code(old_code).lower(), key)
    student = demo_student(who.index)
    assert verdict.status == content.VALID
    assert verdict.details["name"] == student.name[0] + "*" * (len(student.name) - 1)
    assert verdict.details["id_number"] == student.id_number[:6] + "*" * 8 + student.id_number[-4:]
    assert verdict.details["point"] == "南开区招生考试中心"
    assert verdict.details["preferences"][0]["label"] == "志愿一"
    assert student.name not in str(verdict.details) and student.id_number not in str(verdict.details)

    correct(record, postcode="300384")
    assert content.verify(db.session, form.serial, old_code, key).status == content.CHANGED  # before the re-render
    render(record.id, renderer, clock)
    assert content.verify(db.session, form.serial, old_code, key).status == content.CHANGED
    digest = content.content_digest(content.form_content(db.session, record))
    new_code = content.verification_code(key, form.serial, digest)
    assert content.verify(db.session, form.serial, new_code, key).status == content.VALID

    wrong = content.verify(db.session, form.serial, "A" * 16, key)
    unknown = content.verify(db.session, "2027-NK01-999999", old_code, key)
    forged = content.verification_code("other", form.serial, form.digest)
    other_key = content.verify(db.session, form.serial, forged, key)
    assert wrong == unknown == content.Verdict(content.INVALID) == other_key
    assert content.verify(db.session, form.serial, "", key).status == content.INVALID


def test_codes_are_keyed_and_bound_to_serial_and_digest() -> None:
    code = content.verification_code(KEY, "2027-NK01-000001", "d" * 64)
    assert re.fullmatch(r"[A-Z2-7]{16}", code)
    assert code != content.verification_code("other", "2027-NK01-000001", "d" * 64)
    assert code != content.verification_code(KEY, "2027-NK01-000002", "d" * 64)
    assert code != content.verification_code(KEY, "2027-NK01-000001", "e" * 64)
    assert content.normalize_code(content.format_code(code).lower()) == code


def test_only_approved_applications_get_a_form(app, make_applicant, eng, clock, renderer) -> None:
    who = make_applicant()
    to_confirming(eng, who)
    assert forms.render_form(db.session, who.application_id, renderer, storage(), clock()) is None
    assert forms.form_status(db.session, db.session.get(Application, who.application_id), clock(), print) is None
    assert db.session.scalars(select(RegistrationForm)).all() == []


def test_form_status_asks_once_per_content_and_again_after_the_retry_time(app, make_applicant, eng, clock) -> None:
    who = make_applicant()
    record = approve(eng, who)
    asked: list[int] = []
    status = forms.form_status(db.session, record, clock(), asked.append)
    assert status is not None and not status.ready and asked == [record.id]
    forms.form_status(db.session, record, clock(), asked.append)
    assert asked == [record.id]  # already requested for this content
    clock.advance(seconds=app.config["FORM_RENDER_RETRY_SECONDS"] + 1)
    forms.form_status(db.session, record, clock(), asked.append)
    assert asked == [record.id, record.id]


def test_a_failed_render_is_recorded_and_the_sweep_finds_pending_forms(
    app, make_applicant, eng, clock, tmp_path
) -> None:
    who = make_applicant()
    record = approve(eng, who)
    assert forms.stale_applications(db.session, clock()) == [record.id]
    script = tmp_path / "broken"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o755)
    with pytest.raises(PdfError):
        forms.render_form(db.session, record.id, WkhtmltopdfRenderer(str(script)), storage(), clock())
    form = db.session.scalars(select(RegistrationForm)).one()
    assert form.pdf is None and form.failed_at is not None and "exit code 3" in form.last_error
    # Just asked (requested_at set by the sweep): not again until ten retry periods pass.
    assert forms.stale_applications(db.session, clock()) == []
    clock.advance(seconds=app.config["FORM_RENDER_RETRY_SECONDS"] * 10 + 1)
    assert forms.stale_applications(db.session, clock()) == [record.id]


def test_the_sweep_skips_fresh_forms(app, make_applicant, eng, clock, renderer) -> None:
    who = make_applicant()
    record = approve(eng, who)
    render(record.id, renderer, clock)
    assert forms.stale_applications(db.session, clock()) == []


def test_the_worker_task_renders_into_the_cache(app, make_applicant, eng) -> None:
    from gzsb.models import Outbox
    from gzsb.worker import outbox
    from gzsb.worker import tasks as jobs

    who = make_applicant()
    record = approve(eng, who)
    jobs.use_app(app)
    item = outbox.add(db.session, outbox.RENDER_FORM, record.id)
    token = outbox.claim(db.session, item, datetime.now(UTC))
    assert token is not None
    assert jobs.render_registration_form.call_local(item.id, token) is True
    db.session.expire_all()
    assert db.session.get(Outbox, item.id).done_at is not None
    assert forms.fresh_pdf(db.session, db.session.get(Application, record.id)) is not None
    assert jobs.form_sweep.call_local() == 0


def _assign_together(flask_app, application_ids: list[int], now) -> list[str]:
    """Each thread in its own app context (own session and connection); all start at once."""
    barrier = threading.Barrier(len(application_ids))
    serials: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(application_id: int) -> None:
        with flask_app.app_context():
            try:
                record = db.session.get(Application, application_id)
                barrier.wait(timeout=30)
                serials[application_id] = content.ensure_form(db.session, record, now).serial
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work, args=(i,)) for i in application_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return [serials[i] for i in application_ids]


def _approved_applications(make, count: int) -> list[int]:
    eng = runtime_engine()
    return [approve(eng, make()).id for _ in range(count)]


def test_concurrent_first_visits_get_distinct_serials_on_sqlite(app, make_applicant, clock) -> None:
    ids = _approved_applications(make_applicant, 6)
    serials = _assign_together(app, ids, clock())
    assert sorted(int(s[-6:]) for s in serials) == [1, 2, 3, 4, 5, 6]
    assert _assign_together(app, [ids[0]] * 4, clock()) == [serials[0]] * 4  # one application: one serial


@pytest.mark.postgres
def test_concurrent_first_visits_get_distinct_serials_on_postgresql(pg_app, clock, renderer) -> None:
    indexes = itertools.count(1)  # a fresh PostgreSQL schema per test: demo students 1… are free
    ids = _approved_applications(lambda: new_applicant(next(indexes)), 6)
    serials = _assign_together(pg_app, ids, clock())
    assert sorted(int(s[-6:]) for s in serials) == [1, 2, 3, 4, 5, 6]
    assert _assign_together(pg_app, [ids[0]] * 4, clock()) == [serials[0]] * 4
    # The cache and the verification work on PostgreSQL too (bytea, JSON, deferred column).
    form = forms.render_form(db.session, ids[0], renderer, storage(), clock())
    assert form is not None and forms.fresh_pdf(db.session, db.session.get(Application, ids[0])) is not None
    code = content.verification_code(pg_app.config["FORM_KEY"], form.serial, form.digest)
    assert content.verify(db.session, form.serial, code, pg_app.config["FORM_KEY"]).status == content.VALID

"""The review band end to end: the job's distance between the two thresholds sends the
application to the confirmation point's queue (face_review), the student reads that it is
not a rejection, staff see the band, the full ID number and can filter the queue; the
per-ID-number daily cap; the start-up check of the thresholds."""

from __future__ import annotations

import json
import re

import pytest
from flask import Flask
from sqlalchemy import select

from gzsb.app import create_app
from gzsb.common.security import basic_info_of
from gzsb.config import TestConfig
from gzsb.errors import ConfigurationError, InvalidInput
from gzsb.extensions import db
from gzsb.models import FaceAttemptDay, HistoryEvent
from tests.identity.test_service import RED, at_identity, png, record, run_job, submit
from tests.review_support import make_staff, to_manual_identity
from tests.staff.test_views import staff_client
from tests.support import Applicant, log_in_student

# The fake matcher's distance is the colours' distance / 255: 0.47 lies in Dlib's review band.
REVIEW_BLUE = (200, 40, 40 + round(0.47 * 255))


def in_review(app: Flask, who: Applicant) -> None:
    at_identity(who)
    submit(app, who, png(RED), png(REVIEW_BLUE))
    assert run_job(app, who) == "review"


def test_the_review_band_goes_to_the_staff_queue_with_the_band_recorded(app: Flask, make_applicant) -> None:
    who = make_applicant()
    in_review(app, who)
    application = record(who)
    assert application.state == "manual_identity"
    event = db.session.scalars(
        select(HistoryEvent).where(HistoryEvent.application_id == who.application_id).order_by(HistoryEvent.seq.desc())
    ).first()
    assert event is not None and (event.event, event.from_state, event.actor) == (
        "face_review", "face_checking", "system:faces",
    )  # fmt: skip
    payload = json.loads(event.payload)
    assert payload["band"] == "review" and payload["matched"] is False
    assert (payload["model"], payload["threshold"], payload["review_threshold"]) == ("fake-Dlib", 0.415, 0.55)
    assert 0.415 < payload["distance"] <= 0.55
    assert application.data["identity"]["outcome"] == "review"


def test_the_student_is_told_it_is_not_a_rejection(app: Flask, make_applicant) -> None:
    who = make_applicant()
    in_review(app, who)
    client = app.test_client()
    log_in_student(client, who)
    page = client.get("/application").get_data(as_text=True)
    assert "待人工复核：这不是认证失败" in page and "无需重新上传" in page and "短信通知" in page
    assert "人脸比对结果：" not in page and "人脸不一致（" not in page  # no failure line


def test_staff_see_the_band_the_full_id_number_and_filter_by_outcome(app: Flask, make_applicant, eng) -> None:
    reviewed, mismatched = make_applicant(), make_applicant()
    in_review(app, reviewed)
    to_manual_identity(eng, mismatched)
    client = staff_client(app, make_staff())
    everyone = client.get("/staff/queues/identity").get_data(as_text=True)
    assert everyone.count("/staff/applications/") == 2
    review_only = client.get("/staff/queues/identity?outcome=review").get_data(as_text=True)
    mismatch_only = client.get("/staff/queues/identity?outcome=mismatch").get_data(as_text=True)
    assert record(reviewed).uid in review_only and record(mismatched).uid not in review_only
    assert record(mismatched).uid in mismatch_only and record(reviewed).uid not in mismatch_only
    assert "暂无待处理事项" in client.get("/staff/queues/identity?outcome=no_id_card").get_data(as_text=True)
    page = client.get(f"/staff/applications/{record(reviewed).uid}").get_data(as_text=True)
    assert "待人工复核（复核区间）" in page and "0.415" in page and "0.550" in page
    number = basic_info_of(record(reviewed).data)["id_number"]  # sealed at rest
    assert re.search(rf'id="full-id-number">{number}<', page)
    # The queue list itself keeps the number masked.
    assert number not in everyone


def test_the_daily_cap_per_id_number_counts_in_the_transition(app: Flask, make_applicant) -> None:
    who = make_applicant()
    at_identity(who)
    index = record(who).account.id_number_index
    db.session.add(FaceAttemptDay(id_number_index=index, day="2026-12-01", count=29))
    db.session.commit()
    submit(app, who, png(RED), png((40, 40, 200)))  # the 30th today: allowed
    assert run_job(app, who) == "mismatch"
    with pytest.raises(InvalidInput) as caught:
        submit(app, who, png(RED), png(RED))
    assert "今日人脸比对次数已达上限" in caught.value.fields["_upload"][0]
    db.session.expire_all()
    assert db.session.get(FaceAttemptDay, (index, "2026-12-01")).count == 30
    assert record(who).state == "identity_pending"


def test_start_up_refuses_thresholds_out_of_order() -> None:
    class Swapped(TestConfig):
        FACE_THRESHOLDS = {"Dlib": (0.55, 0.415)}

    with pytest.raises(ConfigurationError, match="0 < auto-pass < review"):
        create_app(Swapped)

    class Uncalibrated(TestConfig):
        FACE_MODEL = "ArcFace"

    with pytest.raises(ConfigurationError, match="no face thresholds for model 'ArcFace'"):
        create_app(Uncalibrated)

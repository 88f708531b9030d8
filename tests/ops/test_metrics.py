"""Prometheus metrics: who may read them, request latency by endpoint, fire() outcomes, depths."""

from __future__ import annotations

import re

import pytest

from gzsb.errors import EventNotAvailable
from gzsb.extensions import db
from gzsb.models import Outbox


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in the exposition text (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def scrape(app, **headers: str) -> str:
    answer = app.test_client().get("/metrics", headers=headers)
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


def test_metrics_are_for_loopback_or_the_token_holder(app) -> None:
    assert app.test_client().get("/metrics").status_code == 200  # the test client is 127.0.0.1
    outside = app.test_client()
    outside.environ_base["REMOTE_ADDR"] = "203.0.113.5"
    assert outside.get("/metrics").status_code == 403
    app.config["METRICS_TOKEN"] = "s3cret-token"
    assert app.test_client().get("/metrics").status_code == 403  # a token is set: loopback is not enough
    assert outside.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert outside.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_request_latency_is_counted_by_endpoint(app) -> None:
    before = sample(scrape(app), "gzsb_request_seconds_count", endpoint="ops_health.healthz", status="2xx")
    for _ in range(3):
        app.test_client().get("/healthz")
    app.test_client().get("/no/such/page/123")
    text = scrape(app)
    assert sample(text, "gzsb_request_seconds_count", endpoint="ops_health.healthz", status="2xx") == before + 3
    assert sample(text, "gzsb_request_seconds_count", endpoint="unmatched", status="4xx") >= 1
    assert "/no/such/page" not in text  # no label per URL


def test_fire_outcomes_by_event_and_result(app, eng, make_applicant) -> None:
    who = make_applicant()
    base_ok = sample(scrape(app), "gzsb_fire_total", event="accept_pledge", result="ok")
    base_refused = sample(scrape(app), "gzsb_fire_total", event="pay", result="EventNotAvailable")
    eng.fire(who.application_id, "accept_pledge", who.actor, {"agree": True})
    with pytest.raises(EventNotAvailable):
        eng.fire(who.application_id, "pay", who.actor, {})
    text = scrape(app)
    assert sample(text, "gzsb_fire_total", event="accept_pledge", result="ok") == base_ok + 1
    assert sample(text, "gzsb_fire_total", event="pay", result="EventNotAvailable") == base_refused + 1


def test_outbox_depth_is_read_at_scrape_time(app) -> None:
    db.session.add_all([Outbox(kind="render_form", payload={}), Outbox(kind="render_form", payload={})])
    db.session.commit()
    assert sample(scrape(app), "gzsb_outbox_pending", kind="render_form") == 2
    assert "gzsb_face_job_age_seconds" in scrape(app)

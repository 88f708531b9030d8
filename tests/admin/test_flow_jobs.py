"""Impact reports and migrations over a large fleet: worker jobs with progress the pages
poll (FLOW_JOB_SYNC_MAX set to 0 here, so a fleet of a few counts as large)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from gzsb.admin import flow_jobs
from gzsb.admin import flows as flow_admin
from gzsb.bootstrap import engine
from gzsb.extensions import db
from gzsb.models import Application, FlowJob, FlowProposal, Outbox
from gzsb.store import FLOWS
from gzsb.worker import outbox
from tests.admin.support import add_account, client_of, non_admin_clients
from tests.admin.test_flow_views import IMPACT, NEW_CLOSE, OLD_CLOSE, SHIPPED, api, decide, proposal_id_of, propose
from tests.support import csrf_token

EXTENDED = SHIPPED.replace(OLD_CLOSE, NEW_CLOSE)
AFTER_CLOSE = datetime(2027, 2, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def large(app: Flask) -> Flask:
    app.config["FLOW_JOB_SYNC_MAX"] = 0
    return app


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    _, who = add_account("admin")
    return client_of(app, who)


def test_a_large_fleet_gets_a_job_whose_status_the_panel_polls(large, admin, clock, make_applicant) -> None:
    for _ in range(3):
        make_applicant()
    clock.now = AFTER_CLOSE
    answer = api(admin, IMPACT, EXTENDED)
    assert answer.status_code == 202
    body = answer.get_json()
    assert body["job"]["kind"] == "impact" and body["job"]["total"] == 3
    status = admin.get(body["status_url"]).get_json()
    # The test app's queue is immediate: the job has run; a real one would say running first.
    assert status["job"]["status"] == "done" and status["job"]["percent"] == 100
    assert status["job"]["done"] == 3
    assert "解除阻塞" in status["html"] and 'data-class="unblocked">3<' in status["html"]
    job = db.session.get(FlowJob, body["job"]["id"])
    assert job.result["counts"]["unblocked"] == 3
    sync = flow_admin.impact(db.session, flow_admin.validate(EXTENDED), now=AFTER_CLOSE).to_dict()
    assert job.result["counts"] == sync["counts"] and job.result["by_state"] == sync["by_state"]
    item = db.session.scalars(select(Outbox).where(Outbox.kind == outbox.FLOW_JOB)).one()
    assert item.done_at is not None and item.payload == {"job_id": job.id}


def test_only_admins_see_a_job(large, admin, make_applicant) -> None:
    student = make_applicant()
    make_applicant()
    url = api(admin, IMPACT, EXTENDED).get_json()["status_url"]
    for who, client in non_admin_clients(large, student).items():
        response = client.get(url)
        assert response.status_code in (302, 403), f"a {who} saw a flow job ({response.status_code})"
    assert admin.get(url.replace(url.rsplit("/", 1)[1], "999999")).status_code == 404


def test_progress_is_written_as_the_job_goes_and_a_rerun_finishes(app, monkeypatch, make_applicant) -> None:
    for _ in range(5):
        make_applicant()
    monkeypatch.setattr(flow_jobs, "IMPACT_STEP", 2)
    account, _ = add_account("admin")
    job = flow_jobs.start_impact(db.session, EXTENDED, by=f"account:{account.id}", now=AFTER_CLOSE)
    db.session.commit()
    seen: list[int] = []

    def heartbeat() -> None:  # called before each progress commit: what the page would read
        seen.append(job.done)

    # A worker killed mid-run left it "running": the re-queued run starts it over.
    job.status, job.done = flow_jobs.RUNNING, 4
    db.session.commit()
    done = flow_jobs.run(db.session, engine(), job.id, now=AFTER_CLOSE, heartbeat=heartbeat)
    assert done is not None and done.status == flow_jobs.DONE
    assert seen == [2, 4] and done.done == 5 and done.total == 5
    assert done.result["counts"]["unblocked"] == 5
    again = flow_jobs.run(db.session, engine(), job.id, now=AFTER_CLOSE)  # a duplicate delivery
    assert again is not None and again.result == done.result


def test_a_job_that_fails_says_why(app, make_applicant) -> None:
    make_applicant()
    account, _ = add_account("admin")
    job = flow_jobs.start_impact(db.session, EXTENDED, by=f"account:{account.id}", now=AFTER_CLOSE)
    job.yaml_text = EXTENDED.replace("xueji_checked", "paied", 1)  # e.g. a guard removed since
    db.session.commit()
    done = flow_jobs.run(db.session, engine(), job.id, now=AFTER_CLOSE)
    assert done is not None and done.status == flow_jobs.FAILED and "paied" in done.error
    assert flow_jobs.status(done)["finished"] is True


def test_a_large_proposal_gets_its_impact_and_migration_from_jobs(large, admin, clock, make_applicant) -> None:
    students = [make_applicant() for _ in range(2)]
    clock.now = AFTER_CLOSE
    pid = proposal_id_of(propose(admin, EXTENDED, migrate="1"))
    proposal = db.session.get(FlowProposal, pid)
    assert proposal.impact["counts"]["unblocked"] == 2  # written by the job, not the request
    page = admin.get(f"/admin/flows/proposals/{pid}").get_data(as_text=True)
    assert "解除阻塞" in page
    _, second = add_account("admin")
    page = decide(client_of(large, second), pid, "approve").get_data(as_text=True)
    assert "已迁移2份" in page
    jobs = db.session.scalars(select(FlowJob).where(FlowJob.proposal_id == pid).order_by(FlowJob.id)).all()
    assert [j.kind for j in jobs] == ["impact", "migrate"] and jobs[1].status == "done"
    assert jobs[1].result["counts"]["moved"] == 2
    live = FLOWS.current(db.session, large.config["FLOW_NAME"]).id
    db.session.expire_all()
    assert {db.session.get(Application, s.application_id).flow_version_id for s in students} == {live}


def test_a_running_job_shows_progress_on_the_proposal_page(large, admin, make_applicant) -> None:
    make_applicant()
    pid = proposal_id_of(propose(admin, EXTENDED))
    job = db.session.scalars(select(FlowJob).where(FlowJob.proposal_id == pid)).one()
    job.status, job.done, job.total = flow_jobs.RUNNING, 1, 4
    db.session.commit()
    page = admin.get(f"/admin/flows/proposals/{pid}").get_data(as_text=True)
    assert f'data-job-url="/admin/flows/jobs/{job.id}"' in page and 'value="25"' in page
    assert "已处理 1 / 4" in page and "flowjob.js" in page


def test_a_rollback_can_move_in_flight_applications_back_with_a_second_admin(app, admin, make_applicant) -> None:
    first = FLOWS.current(db.session, app.config["FLOW_NAME"]).id
    pid = proposal_id_of(propose(admin, EXTENDED))
    _, second = add_account("admin")
    other = client_of(app, second)
    decide(other, pid, "approve")
    student = make_applicant()  # starts on the extended version
    assert db.session.get(Application, student.application_id).flow_version_id != first
    token = csrf_token(admin, "/admin/flows")
    rollback = admin.post(f"/admin/flows/versions/{first}/propose-rollback", data={"csrf_token": token})
    back = proposal_id_of(rollback)
    assert db.session.get(FlowProposal, back).migrate is True
    page = decide(other, back, "approve").get_data(as_text=True)
    assert "已迁移1份" in page
    db.session.expire_all()
    assert FLOWS.current(db.session, app.config["FLOW_NAME"]).id == first
    assert db.session.get(Application, student.application_id).flow_version_id == first

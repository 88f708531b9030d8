"""Progress of fleet jobs (impact reports, migrations) for the pages that poll it.

Its own blueprint beside the workbench's: the workbench queues a job with ``queued`` and the
browser polls ``show`` until the job ends, then puts in the rendered result.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template, url_for

from gzsb.accounts.session import login_required
from gzsb.admin import flow_jobs
from gzsb.extensions import db
from gzsb.models import FlowJob
from gzsb.worker.tasks import enqueue_flow_job

bp = Blueprint("admin_flow_jobs", __name__, url_prefix="/admin/flows/jobs")


def queued(job: FlowJob) -> Any:
    """Commit and queue a flushed job; the 202 answer tells the page where to poll."""
    enqueue_flow_job(job.id)
    db.session.refresh(job)  # an immediate queue (tests) has run it already
    status_url = url_for("admin_flow_jobs.show", job_id=job.id)
    return jsonify({"ok": True, "job": flow_jobs.status(job), "status_url": status_url}), 202


def result_html(job: FlowJob) -> str:
    if job.status == flow_jobs.FAILED:
        return render_template("admin/flows/_job.html", job=flow_jobs.status(job))
    if job.kind == flow_jobs.IMPACT:
        return render_template("admin/flows/_impact.html", report=job.result)
    return render_template("admin/flows/_job.html", job=flow_jobs.status(job), migration=job.result)


@bp.get("/<int:job_id>")
@login_required("admin")
def show(job_id: int) -> Any:
    job = flow_jobs.job(db.session, job_id)
    state = flow_jobs.status(job)
    return jsonify({"ok": True, "job": state, "html": result_html(job) if state["finished"] else None})

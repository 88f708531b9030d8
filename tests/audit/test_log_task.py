"""The worker's periodic log task: it integrates every new event and signs a checkpoint."""

from __future__ import annotations

from datetime import datetime

import pytest
from flask import Flask
from huey.exceptions import TaskLockedException
from sqlalchemy import func, select

from gzsb.config import Config
from gzsb.extensions import db
from gzsb.models import FlowVersion, HistoryEvent, LogCheckpoint
from gzsb.worker import tasks
from gzsb.workflow.checkpoint import Signer, verify_checkpoint
from tests.support import to_confirming


def _run_task(app: Flask) -> int:
    tasks.use_app(app)
    try:
        return tasks.log_checkpoint.call_local()
    finally:
        tasks.use_app(None)


def test_the_periodic_task_integrates_and_checkpoints(app: Flask, eng, make_applicant) -> None:
    who = make_applicant()
    to_confirming(eng, who)
    events = db.session.scalar(select(func.count()).select_from(HistoryEvent))
    versions = db.session.scalar(select(func.count()).select_from(FlowVersion))
    assert events and db.session.scalar(select(func.count()).where(HistoryEvent.log_index.is_(None))) == events

    size = _run_task(app)

    db.session.expire_all()
    assert size == events + versions
    assert db.session.scalar(select(func.count()).where(HistoryEvent.log_index.is_(None))) == 0
    row = db.session.scalars(select(LogCheckpoint).order_by(LogCheckpoint.id.desc())).first()
    assert row is not None and row.size == size
    signer = Signer.parse(app.config["LOG_SIGNING_KEY"])
    assert verify_checkpoint(row.note, signer.verifier(), origin=signer.name).checkpoint.size == size

    # Nothing new: the same checkpoint, no second row.
    assert _run_task(app) == size
    assert db.session.scalar(select(func.count()).select_from(LogCheckpoint)) == 1


def test_the_task_runs_every_few_minutes_under_a_lock(app: Flask) -> None:
    every = Config.LOG_CHECKPOINT_MINUTES
    task = tasks.log_checkpoint.task_class()
    assert task.validate_datetime(datetime(2027, 1, 5, 9, 0)) and task.validate_datetime(datetime(2027, 1, 5, 9, every))
    assert every == 1 or not task.validate_datetime(datetime(2027, 1, 5, 9, 1))
    # A second consumer (or a slow run overlapping the next) does not checkpoint concurrently.
    with tasks.huey.lock_task(tasks.LOG_CHECKPOINT_LOCK), pytest.raises(TaskLockedException):
        _run_task(app)
    assert db.session.scalar(select(func.count()).select_from(LogCheckpoint)) == 0

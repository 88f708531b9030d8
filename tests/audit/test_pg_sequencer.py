"""On PostgreSQL (TEST_DATABASE_URL, else skipped): applicants fire events from several
threads while the sequencer integrates in another; no event is lost or logged twice, the
stored tree equals one recomputed from the events, and a checkpoint verifies."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from gzsb.audit.log import LogConfig, checkpoint, integrate, tree
from gzsb.audit.service import FleetCheck, LogPolicy
from gzsb.bootstrap import engine
from gzsb.extensions import db
from gzsb.models import HistoryEvent, LogLeaf
from gzsb.workflow.checkpoint import Signer
from tests.support import new_applicant, to_confirming

WORKERS = 4
PER_WORKER = 3


def test_concurrent_fires_and_sequencer(pg_app: Flask) -> None:
    applicants = [new_applicant(300 + i) for i in range(WORKERS * PER_WORKER)]
    errors: list[BaseException] = []
    done = threading.Event()

    def fire(chunk: list[Any]) -> None:
        with pg_app.app_context():
            try:
                eng = engine()
                for who in chunk:
                    to_confirming(eng, who)
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                db.session.remove()

    def sequence() -> None:
        with pg_app.app_context():
            try:
                while not done.is_set():
                    integrate(db.session, batch=7)
            except BaseException as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    sequencers = [threading.Thread(target=sequence) for _ in range(2)]  # two: the lock must hold
    workers = [threading.Thread(target=fire, args=(applicants[i::WORKERS],)) for i in range(WORKERS)]
    for thread in sequencers + workers:
        thread.start()
    for thread in workers:
        thread.join()
    done.set()
    for thread in sequencers:
        thread.join()
    assert not errors, errors
    integrate(db.session)
    events = db.session.scalar(select(func.count()).select_from(HistoryEvent))
    assert events == WORKERS * PER_WORKER * 5
    logged = db.session.scalars(select(HistoryEvent.log_index)).all()
    assert None not in logged and len(set(logged)) == events
    leaves = db.session.scalar(select(func.count()).select_from(LogLeaf))
    assert leaves == events + 1 == tree(db.session).size  # + the flow publish
    signer = Signer.parse(pg_app.config["LOG_SIGNING_KEY"])
    checkpoint(db.session, LogConfig(signer, signer.name))
    check = FleetCheck(db.session, policy=LogPolicy(signer.verifier(), signer.name))
    assert all(v.ok for v in check.verdicts())
    assert check.problems == [] and check.checkpoint is not None and check.checkpoint.size == events + 1

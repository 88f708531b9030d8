from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from gzsb.audit.service import verify_all
from gzsb.cli.demo import seed
from gzsb.extensions import db
from gzsb.models import Account, Application


def test_demo_seed_covers_every_state_through_real_histories(app) -> None:
    lines = seed(app, per_state=1)
    states = Counter(db.session.scalars(select(Application.state)))
    from gzsb.store import FLOWS

    flow = FLOWS.by_version(db.session, db.session.scalars(select(Application.flow_version_id)).first())
    assert set(states) == set(flow.states)
    verdicts = list(verify_all(db.session))
    assert verdicts and all(v.ok for v in verdicts)
    assert sum(v.events for v in verdicts) > 50
    roles = set(db.session.scalars(select(Account.role)))
    assert {"student", "staff", "admin", "auditor"} <= roles
    # ID numbers are masked in what the command prints.
    assert all("********" in line for line in lines[:-1])


def test_demo_seed_is_idempotent(app) -> None:
    seed(app, per_state=1)
    count = db.session.scalar(select(db.func.count()).select_from(Application))
    assert seed(app, per_state=1) == ["demo data already present; nothing done"]
    assert db.session.scalar(select(db.func.count()).select_from(Application)) == count

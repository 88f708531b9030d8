"""Random sequences of events, roles, payloads, clock jumps and timer runs against the
engine on a SQLite file. A refused event changes nothing; an accepted one advances the
history by exactly one event into the chosen branch's state; and after every step each
stored history replays, under its own flow version, to the state the application row holds.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import event as note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import select

from gzsb.audit.service import verify_all
from gzsb.bootstrap import engine
from gzsb.errors import ServiceError
from gzsb.extensions import db
from gzsb.models import Application, HistoryEvent, Timer
from gzsb.worker.drain import fire_due_timers
from gzsb.workflow.loader import load_flow_file
from tests.conftest import FLOW_FILE, Clock, _make_app
from tests.drive import ROLES, actor_for, application, flow_of, snapshot, valid_payload
from tests.support import Applicant, new_applicant

FLOW = load_flow_file(FLOW_FILE)
EVENTS = sorted(FLOW.event_names) + ["no_such_event"]
CLOSES = FLOW.windows["registration"].closes
FIELDS = ["agree", "name", "id_number", "choices", "answer", "problem", "photo", "id_card", "matched", "order"]
GARBAGE = st.dictionaries(
    keys=st.one_of(st.sampled_from(FIELDS), st.text(max_size=6)),
    values=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**40), 2**40),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
        st.lists(st.text(max_size=4), max_size=3),
        st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    ),
    max_size=5,
)


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="gzsb-stateful-"))
        self.clock = Clock()
        self.app = _make_app(f"sqlite:///{self.tmp / 'stateful.sqlite3'}", self.clock)
        self.ctx = self.app.app_context()
        self.ctx.push()
        # A 普通 applicant, one whose category needs materials reviewed, one the registry lacks.
        self.applicants: list[Applicant] = [
            new_applicant(1),
            new_applicant(2, category="退役士兵"),
            new_applicant(3, in_registry=False),
        ]

    def teardown(self) -> None:
        db.session.remove()
        db.engine.dispose()
        self.ctx.pop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _others(self, who: Applicant) -> dict[int, tuple[Any, ...]]:
        return {
            a.application_id: (r.state, r.seq, r.head)
            for a in self.applicants
            if a is not who
            for r in [application(a.application_id)]
        }

    def _available(self, who: Applicant) -> list[tuple[str, str]]:
        record = application(who.application_id)
        eng = engine()
        return [
            (option.event, role)
            for role in ROLES
            for option in eng.options(record, actor_for(who, role))
            if option.available
        ]

    def _payload(self, data: st.DataObject, who: Applicant, event: str, kind: str) -> dict[str, Any]:
        flow = flow_of(who.application_id)
        if kind == "garbage":
            return data.draw(GARBAGE, label="garbage")
        if kind == "other":
            # The right shape, for someone else: another ID number, another order.
            other = data.draw(st.sampled_from([a for a in self.applicants if a is not who]), label="other")
            return valid_payload(flow, application(other.application_id), event, other)
        payload = valid_payload(flow, application(who.application_id), event, who)
        if kind == "mangled" and payload:
            key = data.draw(st.sampled_from(sorted(payload)), label="mangled key")
            payload[key] = data.draw(st.one_of(st.none(), st.text(max_size=3), st.integers()), label="value")
        return payload

    def _attempt(self, who: Applicant, event: str, role: str, payload: dict[str, Any]) -> None:
        """Fire and check: refused → nothing changed; accepted → one event, into the chosen branch."""
        eng = engine()
        actor = actor_for(who, role)
        record = application(who.application_id)
        chosen, _ = eng.evaluate(flow_of(who.application_id), record, event, actor, self.clock.now)
        before = snapshot(who.application_id)
        others = self._others(who)
        try:
            fired = eng.fire(who.application_id, event, actor, payload)
        except ServiceError as exc:
            assert snapshot(who.application_id) == before, (event, role, payload, exc)
            note(f"refused: {type(exc).__name__}")
            return
        after = snapshot(who.application_id)
        state, seq, version, events = after[0], after[1], after[2], after[6]
        assert seq == before[1] + 1 == fired.seq
        # A step may flush twice (basic_info's lookups autoflush the record): the version
        # only has to move on.
        assert events == before[6] + 1 and version > before[2]
        assert chosen is not None and actor.role in chosen.actors
        assert fired.from_state == before[0] and fired.to_state == chosen.dest == state
        assert after[3] == fired.hash != before[3]
        assert self._others(who) == others
        last = db.session.scalars(
            select(HistoryEvent).where(HistoryEvent.application_id == who.application_id, HistoryEvent.seq == seq)
        ).one()
        assert (last.event, last.from_state, last.to_state, last.role) == (event, before[0], state, role)
        note(f"reached {state}")

    @rule(data=st.data())
    def fire_anything(self, data: st.DataObject) -> None:
        """Any event name (legal here or not), any role, any kind of payload."""
        who = data.draw(st.sampled_from(self.applicants), label="applicant")
        event = data.draw(st.sampled_from(EVENTS), label="event")
        role = data.draw(st.sampled_from(ROLES), label="role")
        kind = data.draw(st.sampled_from(["valid", "mangled", "other", "garbage"]), label="payload")
        self._attempt(who, event, role, self._payload(data, who, event, kind))

    @rule(data=st.data(), steps=st.integers(1, 4))
    def progress(self, data: st.DataObject, steps: int) -> None:
        """Events available now, mostly with valid payloads, mostly for the first applicant."""
        who = self.applicants[data.draw(st.sampled_from([0, 0, 0, 1, 1, 2]), label="applicant")]
        for _ in range(steps):
            available = self._available(who)
            if not available:
                return
            event, role = data.draw(st.sampled_from(available), label="available event")
            kind = data.draw(st.sampled_from(["valid"] * 6 + ["mangled", "other"]), label="payload")
            self._attempt(who, event, role, self._payload(data, who, event, kind))
            self.histories_replay_to_the_stored_state()

    @rule(hours=st.sampled_from([1, 6, 23, 25, 49]), past_close=st.integers(0, 24))
    def advance_clock(self, hours: int, past_close: int) -> None:
        if past_close == 0 and self.clock.now < CLOSES:
            self.clock.now = CLOSES + timedelta(hours=hours)
        else:
            self.clock.advance(hours=hours)

    @rule()
    def run_timers(self) -> None:
        before = {a.application_id: application(a.application_id).state for a in self.applicants}
        fired = fire_due_timers(db.session, engine(), self.clock.now)
        db.session.expire_all()
        after = {a.application_id: application(a.application_id).state for a in self.applicants}
        expired = [i for i in before if before[i] == "payment_pending" and after[i] == "identity_verified"]
        assert fired == len(expired)
        assert all(before[i] == after[i] for i in before if i not in expired)
        now = self.clock.now.astimezone(UTC)
        assert db.session.scalars(select(Timer).where(Timer.fired_at.is_(None), Timer.due_at <= now)).all() == []
        # Running the worker again at the same moment fires nothing.
        assert fire_due_timers(db.session, engine(), self.clock.now) == 0
        note(f"timers fired: {fired}")

    @invariant()
    def histories_replay_to_the_stored_state(self) -> None:
        db.session.expire_all()
        stored = {r.uid: r for r in db.session.scalars(select(Application))}
        verdicts = list(verify_all(db.session))
        assert len(verdicts) == len(self.applicants)
        for verdict in verdicts:
            assert verdict.ok, verdict.describe()
            assert verdict.state == stored[verdict.application].state
            assert verdict.events == stored[verdict.application].seq

    @invariant()
    def only_an_open_order_has_an_open_timer(self) -> None:
        for a in self.applicants:
            record = application(a.application_id)
            open_timers = db.session.execute(
                select(Timer.state, Timer.armed_seq, Timer.event).where(
                    Timer.application_id == record.id, Timer.fired_at.is_(None)
                )
            ).all()
            if record.state == "payment_pending":
                assert [tuple(t) for t in open_timers] == [("payment_pending", record.seq, "payment_expired")]
            else:
                assert open_timers == []


EngineMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure is a bug, never a flake
    database=None,
    # No shrinking: each case builds a database, and shrinking a failure took minutes. A
    # failure prints its (unshrunk, at most 40-step) program; add Phase.shrink to minimise it.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
TestEngineStateful = EngineMachine.TestCase

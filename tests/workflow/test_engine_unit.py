"""The engine and the real steps and guards on the shipped flow, in memory (the unit tier).

No Flask app and no database: ``tests.fakes.MemoryStore`` is the Store, ``FakeServices``
the services. What needs SQL (row locks, the database's history) stays in test_engine.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gzsb.accounts.idcard import check_digit
from gzsb.bootstrap import SENSITIVE_FIELDS, import_areas
from gzsb.config import ROOT
from gzsb.errors import EventNotAvailable, Forbidden, GuardRefused, InvalidInput, NotFound
from gzsb.workflow.engine import Actor, Engine
from gzsb.workflow.history import Redactor
from gzsb.workflow.history_replay import replay
from gzsb.workflow.loader import load_flow_file
from gzsb.workflow.registry import STEPS
from tests.fakes import FakeServices, MemoryRecord, MemoryStore

pytestmark = pytest.mark.unit

FLOW = load_flow_file(ROOT / "flows" / "enrollment.yaml")
IN_WINDOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
ID_NUMBER = "120101200301011236"
STUDENT = Actor("account:1", "student")
SYSTEM = Actor.system("test")
CHOICES = {"choices": [{"institution": "10060", "major": "080901"}, {"institution": "10066", "major": "080902"}]}


def basic_info(**overrides: Any) -> dict[str, Any]:
    # The step's own example: a valid 基本信息 of 张三, 120101200301011236.
    return {**STEPS.get("basic_info").example(), **overrides}


class Clock:
    def __init__(self) -> None:
        self.now = IN_WINDOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(FLOW)


@pytest.fixture
def services() -> FakeServices:
    registry_row = {"id": 1, "name": "张三", "school": "天津职业大学", "major": "计算机应用技术", "has_photo": False}
    return FakeServices(id_numbers={1: ID_NUMBER}, registry={ID_NUMBER: registry_row})


@pytest.fixture
def engine(store: MemoryStore, services: FakeServices, clock: Clock) -> Engine:
    import_areas()  # registers every area's guards and steps by name (no app is built)
    return Engine(store, redactor=Redactor("unit-history-key", SENSITIVE_FIELDS), services=services, clock=clock)


def to_confirming(engine: Engine, record: MemoryRecord) -> None:
    engine.fire(record.id, "accept_pledge", STUDENT, {"agree": True})
    engine.fire(record.id, "submit_basic_info", STUDENT, basic_info())
    engine.fire(record.id, "check_xueji", STUDENT, {})
    engine.fire(record.id, "confirm_xueji", STUDENT, {"answer": "correct"})
    engine.fire(record.id, "submit_preferences", STUDENT, CHOICES)


def state_of(store: MemoryStore, record: MemoryRecord) -> tuple[Any, ...]:
    return record.state, record.seq, record.version, record.head, repr(record.data), len(store.history[record.id])


def test_a_student_walks_to_payment_and_the_history_replays(engine: Engine, store: MemoryStore) -> None:
    record = store.start()
    to_confirming(engine, record)
    assert record.data["preferences"][0]["institution_name"] == "天津理工大学"
    assert record.confirmation_point_id == 1
    engine.fire(record.id, "confirm_info", STUDENT, {})
    engine.fire(record.id, "give_face_consent", STUDENT, {"agree": True})
    store_uploads = engine.services.uploads
    store_uploads[(record.id, "photo")], store_uploads[(record.id, "id_card")] = {"p1"}, {"c1"}
    engine.fire(record.id, "upload_identity", STUDENT, {"photo": "p1", "id_card": "c1"})
    assert ("job" in {kind for _, kind, _ in store.outboxed}) and record.state == "face_checking"
    matched = {"matched": True, "distance": 0.3, "threshold": 0.6, "model": "Dlib"}
    engine.fire(record.id, "face_matched", SYSTEM, matched)
    fired = engine.fire(record.id, "create_order", STUDENT, {})
    assert fired.to_state == "payment_pending" and engine.services.current_order(record.id).amount_fen > 0
    assert store.sms_templates(record.id) == ["identity_verified"]
    [timer] = store.pending_timers(record.id)
    assert (timer.event, timer.armed_seq) == ("payment_expired", fired.seq)

    verdict = replay(record.uid, FLOW, store.history[record.id], head=record.head, state=record.state)
    assert verdict.ok, verdict.describe()
    assert ID_NUMBER not in repr(store.history[record.id])  # personal data is hashed in the history


def test_refusals_change_nothing(engine: Engine, store: MemoryStore, clock: Clock) -> None:
    record = store.start()
    before = state_of(store, record)
    with pytest.raises(Forbidden):
        engine.fire(record.id, "accept_pledge", SYSTEM, {"agree": True})
    with pytest.raises(EventNotAvailable):
        engine.fire(record.id, "create_order", STUDENT, {})
    with pytest.raises(InvalidInput) as invalid:
        engine.fire(record.id, "accept_pledge", STUDENT, {})
    assert invalid.value.fields == {"agree": ["请先阅读并勾选考试承诺书"]}
    clock.now += timedelta(days=60)
    with pytest.raises(GuardRefused) as refused:
        engine.fire(record.id, "accept_pledge", STUDENT, {"agree": True})
    assert refused.value.reasons[0].startswith("报名时间已截止")
    with pytest.raises(NotFound):
        engine.fire(999, "accept_pledge", STUDENT, {"agree": True})
    assert state_of(store, record) == before


def test_a_step_failing_after_changes_rolls_the_store_back(engine: Engine, store: MemoryStore) -> None:
    record = store.start()
    engine.fire(record.id, "accept_pledge", STUDENT, {"agree": True})
    before = state_of(store, record)
    other = "12010120030101125" + check_digit("12010120030101125")  # valid, same birth date and sex
    with pytest.raises(InvalidInput) as invalid:  # the services refuse: not the account's ID number
        engine.fire(record.id, "submit_basic_info", STUDENT, basic_info(id_number=other))
    assert invalid.value.fields == {"id_number": ["身份证号须与注册时一致"]}
    assert state_of(store, record) == before


def test_services_decide_registry_and_catalogue(engine: Engine, store: MemoryStore, services: FakeServices) -> None:
    record = store.start()
    engine.fire(record.id, "accept_pledge", STUDENT, {"agree": True})
    engine.fire(record.id, "submit_basic_info", STUDENT, basic_info())
    services.registry.clear()
    engine.fire(record.id, "check_xueji", STUDENT, {})
    assert record.data["xueji"]["status"] == "not_found"
    with pytest.raises(InvalidInput):
        engine.fire(record.id, "submit_preferences", STUDENT, {"choices": [{"institution": "99999", "major": "1"}]})
    options = {o.event: o for o in engine.options(record, STUDENT)}
    assert options["submit_preferences"].available
    assert not options["confirm_xueji"].available  # the xueji_found guard: nothing was found


def test_memory_store_is_a_store() -> None:
    # The fake must keep the port's promises, or unit tests prove nothing.
    store = MemoryStore(FLOW)
    record = store.start()
    with pytest.raises(RuntimeError), store.transaction():
        store.save(record, state="pledged", data={"x": 1}, seq=1, head="h")
        store.outbox(record, "sms", {})
        raise RuntimeError
    assert (record.state, record.seq, record.data, store.outboxed) == (FLOW.initial, 0, {}, [])
    with store.transaction():
        store.save(record, state="pledged", data={"x": 1}, seq=1, head="h")
    assert (record.state, record.version) == ("pledged", 2)

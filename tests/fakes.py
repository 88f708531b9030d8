"""Fakes for the unit tier: an in-memory Store and the services steps ask, without Flask or a database.

``MemoryStore`` implements the engine's ``Store`` port (``gzsb.workflow.engine.Store``) with
the same transaction rule as ``gzsb.store.SqlStore``: everything a ``fire`` changes is
kept on success and undone on error. ``FakeServices`` answers what
``gzsb.enrollment.service.Services`` answers, from dicts a test fills in.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from gzsb.common.security import Vault
from gzsb.enrollment.service import UNKNOWN_INSTITUTION, UNKNOWN_MAJOR
from gzsb.errors import NotFound
from gzsb.workflow.history import EventRow, genesis_hash
from gzsb.workflow.spec import FlowSpec


@dataclass
class MemoryRecord:
    """An application row as the engine sees it (``gzsb.workflow.engine.Record``)."""

    id: int
    uid: str
    state: str
    head: str
    account_id: int
    version: int = 1
    seq: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    confirmation_point_id: int | None = None


@dataclass
class MemoryTimer:
    application_id: int
    state: str
    event: str
    armed_seq: int
    due_at: datetime
    outcome: str | None = None


class MemoryStore:
    """The engine's Store in memory. One flow for every application."""

    def __init__(self, flow: FlowSpec) -> None:
        self.flow = flow
        self.records: dict[int, MemoryRecord] = {}
        self.history: dict[int, list[EventRow]] = {}
        self.outboxed: list[tuple[int, str, dict[str, Any]]] = []
        self.timers: list[MemoryTimer] = []
        self._ids = itertools.count(1)

    def start(self, account_id: int = 1) -> MemoryRecord:
        """A new application in the flow's initial state (``gzsb.store.start_application``)."""
        record_id = next(self._ids)
        uid = f"app{record_id:05d}"
        record = MemoryRecord(record_id, uid, self.flow.initial, genesis_hash(uid, self.flow.sha256), account_id)
        self.records[record_id] = record
        self.history[record_id] = []
        return record

    # -- the Store port ------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        saved = copy.deepcopy((self.records, self.history, self.outboxed, self.timers))
        try:
            yield
        except BaseException:
            # Restore in place: callers may hold the record objects.
            records, self.history, self.outboxed, self.timers = saved
            for record_id, old in records.items():
                vars(self.records[record_id]).update(vars(old))
            raise

    def lock(self, application_id: int) -> MemoryRecord:
        record = self.records.get(application_id)
        if record is None:
            raise NotFound(f"application {application_id} does not exist")
        return record

    def flow_of(self, record: MemoryRecord) -> FlowSpec:
        return self.flow

    def save(self, record: MemoryRecord, *, state: str, data: dict[str, Any], seq: int, head: str) -> None:
        record.state, record.data, record.seq, record.head = state, data, seq, head
        record.version += 1

    def append(self, record: MemoryRecord, row: EventRow) -> None:
        rows = self.history[record.id]
        if rows and rows[-1].seq >= row.seq:
            raise AssertionError(f"seq {row.seq} appended after {rows[-1].seq}")
        rows.append(row)

    def outbox(self, record: MemoryRecord, kind: str, payload: dict[str, Any]) -> None:
        self.outboxed.append((record.id, kind, payload))

    def cancel_timers(self, record: MemoryRecord, now: datetime) -> None:
        for timer in self.timers:
            if timer.application_id == record.id and timer.outcome is None:
                timer.outcome = "cancelled"

    def arm_timer(self, record: MemoryRecord, state: str, event: str, armed_seq: int, due_at: datetime) -> None:
        self.timers.append(MemoryTimer(record.id, state, event, armed_seq, due_at))

    # -- what tests read -----------------------------------------------------------

    def pending_timers(self, application_id: int) -> list[MemoryTimer]:
        return [t for t in self.timers if t.application_id == application_id and t.outcome is None]

    def sms_templates(self, application_id: int) -> list[str]:
        return [p["template"] for a, kind, p in self.outboxed if a == application_id and kind == "sms"]


@dataclass
class FakeServices:
    """What steps ask of the outside world (``gzsb.enrollment.service.Services``), from dicts."""

    points: dict[str, int] = field(default_factory=lambda: {"NK01": 1, "HX01": 2})
    # account id → the ID number it registered with
    id_numbers: dict[int, str] = field(default_factory=dict)
    # ID number → registry record (as ``Services.xueji_lookup`` returns it)
    registry: dict[str, dict[str, Any]] = field(default_factory=dict)
    institutions: dict[str, str] = field(default_factory=lambda: {"10060": "天津理工大学", "10066": "天津师范大学"})
    majors: dict[tuple[str, str], str] = field(
        default_factory=lambda: {("10060", "080901"): "计算机科学与技术", ("10066", "080902"): "软件工程"}
    )
    uploads: dict[tuple[int, str], set[str]] = field(default_factory=dict)  # (application, kind) → uids
    slots: dict[str, str] = field(default_factory=dict)  # material upload uid → its document slot
    corrections: dict[tuple[int, int], str] = field(default_factory=dict)  # (application, request) → status
    orders: dict[int, SimpleNamespace] = field(default_factory=dict)  # application → its latest order
    face_attempts: dict[tuple[int, str], int] = field(default_factory=dict)  # (account, day) → count
    # The real Vault (personal fields are sealed in data["basic_info"]), with test keys.
    vault: Vault = field(default_factory=lambda: Vault("unit-data-key", "unit-index-key"))

    def confirmation_point(self, code: str) -> int | None:
        return self.points.get(code)

    def is_own_id_number(self, record: Any, id_number: str) -> bool:
        return self.id_numbers.get(record.account_id) == id_number

    def xueji_lookup(self, id_number: str) -> dict[str, Any] | None:
        return self.registry.get(id_number) if id_number else None

    def catalogue_loaded(self) -> bool:
        return bool(self.institutions)

    def check_choices(self, choices: Sequence[dict[str, Any]]) -> dict[int, dict[str, list[str]]]:
        errors: dict[int, dict[str, list[str]]] = {}
        for position, choice in enumerate(choices):
            institution, major = choice.get("institution"), choice.get("major")
            if institution not in self.institutions:
                errors[position] = {"institution": [UNKNOWN_INSTITUTION]}
            elif (institution, major) not in self.majors:
                errors[position] = {"major": [UNKNOWN_MAJOR]}
        return errors

    def checked_choices(
        self, choices: Sequence[dict[str, Any]]
    ) -> tuple[dict[int, dict[str, list[str]]], list[dict[str, Any]]]:
        return self.check_choices(choices), self.describe_choices(choices)

    def describe_choices(self, choices: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "institution": c["institution"],
                "institution_name": self.institutions.get(c["institution"], ""),
                "major": c["major"],
                "major_name": self.majors.get((c["institution"], c["major"]), ""),
            }
            for c in choices
        ]

    def live_uploads(self, application_id: int, uids: Sequence[str], kind: str) -> set[str]:
        return self.uploads.get((application_id, kind), set()) & set(uids)

    def live_upload_kinds(self, application_id: int, uids: Sequence[str]) -> dict[str, str]:
        return {
            uid: kind for (app, kind), live in self.uploads.items() if app == application_id for uid in live & set(uids)
        }

    def upload_slots(self, application_id: int, uids: Sequence[str], kind: str) -> dict[str, str]:
        return {uid: self.slots.get(uid, "") for uid in self.live_uploads(application_id, uids, kind)}

    def decide_correction(
        self, application_id: int, request_id: int, *, status: str, note: str, decided_by: int | None, now: Any
    ) -> bool:
        if self.corrections.get((application_id, request_id)) != "open":
            return False
        self.corrections[(application_id, request_id)] = status
        return True

    def close_open_corrections(self, application_id: int, *, status: str, note: str, now: datetime) -> int:
        open_ = [key for key, value in self.corrections.items() if key[0] == application_id and value == "open"]
        for key in open_:
            self.corrections[key] = status
        return len(open_)

    def file_correction(
        self,
        application_id: int,
        *,
        registry_record_id: int | None,
        confirmation_point_id: int | None,
        problem: str,
        evidence: Sequence[str],
        now: datetime,
    ) -> int:
        request_id = len(self.corrections) + 1
        self.corrections[(application_id, request_id)] = "open"
        return request_id

    # -- orders: one open order per application, as the payment_orders row keeps it --------

    def current_order(self, application_id: int) -> SimpleNamespace | None:
        order = self.orders.get(application_id)
        return order if order is not None and order.status == "open" else None

    def open_order(
        self, application_id: int, *, number: str, amount_fen: int, currency: str, deadline: datetime, now: datetime
    ) -> SimpleNamespace:
        order = SimpleNamespace(number=number, amount_fen=amount_fen, currency=currency, deadline=deadline)
        order.status, order.trade_no = "open", ""
        self.orders[application_id] = order
        return order

    def pay_order(self, number: str, *, gateway: str, trade_no: str, channel: str, now: datetime) -> bool:
        for order in self.orders.values():
            if order.number == number and order.status == "open":
                order.status, order.trade_no = "paid", trade_no
                return True
        return False

    def expire_order(self, application_id: int, now: datetime) -> SimpleNamespace | None:
        order = self.current_order(application_id)
        if order is not None:
            order.status = "expired"
        return order

    def take_face_attempt(self, account_id: int, now: datetime, cap: int) -> int | None:
        key = (account_id, now.date().isoformat())
        if self.face_attempts.get(key, 0) >= cap:
            return None
        self.face_attempts[key] = self.face_attempts.get(key, 0) + 1
        return self.face_attempts[key]

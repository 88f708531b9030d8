"""What the engine needs of the world: who fires, an application row, and the Store port.

Apart from engine.py so that engine helpers (migrate.py) can name them without importing
the engine; ``gzsb.workflow.engine`` re-exports them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gzsb.workflow.history import EventRow
from gzsb.workflow.spec import FlowSpec


@dataclass(frozen=True)
class Actor:
    """Who fires an event: ``id`` such as ``account:12`` or ``system:timer``."""

    id: str
    role: str

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(f"system:{name}", "system")


class Record(Protocol):
    """What the engine needs of an application row."""

    id: int
    uid: str
    state: str
    version: int
    seq: int
    head: str
    data: dict[str, Any]
    account_id: int


class Store(Protocol):
    """Persistence port. ``transaction()`` commits on success and rolls back on error."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def lock(self, application_id: int) -> Record: ...

    def flow_of(self, record: Record) -> FlowSpec: ...

    def save(self, record: Record, *, state: str, data: dict[str, Any], seq: int, head: str) -> None: ...

    def append(self, record: Record, row: EventRow) -> None: ...

    def outbox(self, record: Record, kind: str, payload: dict[str, Any]) -> None: ...

    def cancel_timers(self, record: Record, now: datetime) -> None: ...

    def arm_timer(self, record: Record, state: str, event: str, armed_seq: int, due_at: datetime) -> None: ...

    def switch_flow(self, record: Record, sha256: str) -> None:
        """Put the application on the published flow version with this SHA-256 (NotFound if none)."""
        ...

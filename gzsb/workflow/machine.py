"""FlowSpec → transitions.Machine. The only module that imports ``transitions``.

One machine per flow version (cached by SHA-256); applications are not added to it as
models: each move triggers the event on a throw-away token carrying the current state.
The branch the engine chose (after evaluating guards itself, so it can report reasons)
is passed in, and each branch's condition accepts only its own index, so transitions
still decides legality (is the event defined from this state?) and the destination.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from transitions import Machine, MachineError

from gzsb.errors import EventNotAvailable
from gzsb.workflow.spec import FlowSpec, TransitionSpec


class _Token:
    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


def _accepts(index: int) -> Callable[[Any], bool]:
    def condition(event_data: Any) -> bool:
        return event_data.kwargs.get("branch") == index

    return condition


class FlowMachine:
    def __init__(self, flow: FlowSpec) -> None:
        self.flow = flow
        self._machine = Machine(
            model=None,
            states=list(flow.states),
            initial=flow.initial,
            auto_transitions=False,
            send_event=True,
        )
        for t in flow.transitions:
            self._machine.add_transition(t.event, t.source, t.dest, conditions=[_accepts(t.index)])
        # Replay lookup: (event, source) → {dest: first branch to it}. Replay checks recorded
        # moves, so it needs no guards and no trigger call per event (see bench/RESULTS.md).
        self.table: dict[tuple[str, str], dict[str, TransitionSpec]] = {}
        for t in flow.transitions:
            self.table.setdefault((t.event, t.source), {}).setdefault(t.dest, t)

    def move(self, state: str, event: str, branch: TransitionSpec) -> str:
        token = _Token(state)
        try:
            moved = self._machine.events[event].trigger(token, branch=branch.index)
        except (KeyError, MachineError):
            moved = False
        if not moved:
            raise EventNotAvailable(f"event {event!r} cannot fire from state {state!r}")
        return token.state

    def legal(self, state: str, event: str, dest: str) -> TransitionSpec | None:
        """The branch that takes ``event`` from ``state`` to ``dest``, or None."""
        slot = self.table.get((event, state))
        return slot.get(dest) if slot else None


class MachineCache:
    """One FlowMachine per flow version, built once per process."""

    def __init__(self) -> None:
        self._machines: dict[str, FlowMachine] = {}
        self._lock = threading.Lock()

    def get(self, flow: FlowSpec) -> FlowMachine:
        machine = self._machines.get(flow.sha256)
        if machine is None:
            with self._lock:
                machine = self._machines.get(flow.sha256) or FlowMachine(flow)
                self._machines[flow.sha256] = machine
        return machine


MACHINES = MachineCache()

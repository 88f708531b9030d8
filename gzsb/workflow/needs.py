"""Names of the flow that code relies on, declared by each area so the validator can check them.

The flow YAML is the source of truth for state, event, window and setting names; code that
must name one (a staff queue is a state, a gateway notify fires an event) declares it once,
in its area's ``names.py``, with what it is for::

    from gzsb.workflow.needs import NEEDS

    need = NEEDS.area("payments")
    ORDER_OPEN = need.state("payment_pending", "the open order page: a notify is applied only here")

The constant's value is the name in the shipped flow. ``missing(flow)`` lists what a flow
lacks, so `flask flow validate` refuses a flow in which a rename would break an area.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from gzsb.errors import ConfigurationError
from gzsb.workflow.spec import FlowSpec

Kind = Literal["state", "event", "window", "setting"]
# Where each kind lives in the flow file: the key path of a problem.
SECTIONS: dict[Kind, str] = {"state": "states", "event": "transitions", "window": "windows", "setting": "settings"}


@dataclass(frozen=True)
class Need:
    area: str
    kind: Kind
    name: str
    purpose: str


@dataclass(frozen=True)
class Missing:
    """One name a flow lacks, with every area that needs it."""

    kind: Kind
    name: str
    needs: tuple[Need, ...]
    known: tuple[str, ...]

    @property
    def path(self) -> str:
        return SECTIONS[self.kind]

    @property
    def message(self) -> str:
        who = " and ".join(f"area {n.area!r} ({n.purpose})" for n in self.needs)
        return f"{self.kind} {self.name!r} is needed by {who}; known: {', '.join(self.known) or '(none)'}"


def names_in(flow: FlowSpec, kind: Kind) -> tuple[str, ...]:
    """The names of one kind that a flow declares."""
    if kind == "state":
        return tuple(sorted(flow.states))
    if kind == "event":
        return tuple(sorted({t.event for t in flow.transitions}))
    if kind == "window":
        return tuple(sorted(flow.windows))
    return tuple(sorted(flow.settings))


class AreaNeeds:
    """The declaring side: ``need.state(name, purpose)`` registers and returns the name."""

    def __init__(self, registry: Needs, area: str) -> None:
        self.registry = registry
        self.area = area

    def _add(self, kind: Kind, name: str, purpose: str) -> str:
        return self.registry.add(Need(self.area, kind, name, purpose)).name

    def state(self, name: str, purpose: str) -> str:
        return self._add("state", name, purpose)

    def event(self, name: str, purpose: str) -> str:
        return self._add("event", name, purpose)

    def window(self, name: str, purpose: str) -> str:
        return self._add("window", name, purpose)

    def setting(self, name: str, purpose: str) -> str:
        return self._add("setting", name, purpose)


class Needs:
    """Every declared need, in declaration order."""

    def __init__(self, kind: str = "needs") -> None:
        self.kind = kind
        self._needs: dict[tuple[str, Kind, str], Need] = {}

    def area(self, area: str) -> AreaNeeds:
        return AreaNeeds(self, area)

    def add(self, need: Need) -> Need:
        key = (need.area, need.kind, need.name)
        earlier = self._needs.get(key)
        if earlier is not None and earlier != need:
            raise ConfigurationError(f"area {need.area!r} declares {need.kind} {need.name!r} twice")
        self._needs[key] = need
        return need

    def __iter__(self) -> Iterator[Need]:
        return iter(list(self._needs.values()))

    def __len__(self) -> int:
        return len(self._needs)

    def of(self, area: str) -> list[Need]:
        return [n for n in self if n.area == area]

    def missing(self, flow: FlowSpec) -> list[Missing]:
        """What the flow lacks, one entry per missing name (all the areas needing it)."""
        wanted: dict[tuple[Kind, str], list[Need]] = {}
        for need in self:
            wanted.setdefault((need.kind, need.name), []).append(need)
        found: list[Missing] = []
        for (kind, name), needs in wanted.items():
            known = names_in(flow, kind)
            if name not in known:
                found.append(Missing(kind, name, tuple(needs), known))
        return found


# The needs of the product's areas; filled by importing each area's ``names`` module.
NEEDS = Needs()

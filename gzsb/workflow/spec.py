"""Frozen, validated description of a flow. Only the loader builds these from YAML."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

ROLES = ("student", "staff", "admin", "system")


@dataclass(frozen=True)
class WindowOverride:
    """A group's own opening and/or closing; what it leaves out is the window's."""

    opens: datetime | None = None
    closes: datetime | None = None


def _no_overrides() -> Mapping[str, WindowOverride]:
    return MappingProxyType({})


@dataclass(frozen=True)
class WindowSpec:
    """A time window; ``by_point`` (确认点 code) and ``by_district`` (the first 2, 4 or 6
    digits of the ID number) stagger it per group of applicants."""

    name: str
    opens: datetime
    closes: datetime
    by_point: Mapping[str, WindowOverride] = field(default_factory=_no_overrides)
    by_district: Mapping[str, WindowOverride] = field(default_factory=_no_overrides)

    def phase(self, now: datetime) -> str:
        """``upcoming``, ``open`` or ``closed`` at ``now`` (opens inclusive, closes exclusive)."""
        if now < self.opens:
            return "upcoming"
        return "open" if now < self.closes else "closed"

    def for_group(self, point: str | None = None, district: str | None = None) -> WindowSpec:
        """The window of an applicant with this 确认点 and ID-number district: the point's
        override first, else the longest matching district prefix, else this window."""
        override = self.by_point.get(point) if point else None
        if override is None and district:
            for length in (6, 4, 2):
                override = self.by_district.get(district[:length])
                if override is not None:
                    break
        if override is None:
            return self
        return WindowSpec(self.name, override.opens or self.opens, override.closes or self.closes)

    def groups(self) -> tuple[tuple[str, WindowSpec], ...]:
        """Every group's resolved window with its key path, e.g. ``by_point.NK01``."""
        found = [(f"by_point.{code}", self.for_group(point=code)) for code in self.by_point]
        found += [(f"by_district.{code}", self.for_group(district=code)) for code in self.by_district]
        return tuple(found)

    @property
    def earliest_opening(self) -> datetime:
        """When the first group may start (the waiting room's opening)."""
        return min([self.opens, *(window.opens for _, window in self.groups())])


@dataclass(frozen=True)
class StageSpec:
    """A step of the process page (流程页面); several states may share one stage."""

    key: str
    label: str
    button: str = "去填写"
    optional: bool = False


@dataclass(frozen=True)
class StateSpec:
    name: str
    label: str
    page: str
    stage: str | None = None
    final: bool = False
    # What the 流程页面 says in this state, who the student waits for (empty: nobody, it is
    # their turn) and the text of its one button (empty: the stage's button).
    status: str = ""
    waiting: str = ""
    button: str = ""


@dataclass(frozen=True)
class GuardCall:
    name: str
    args: Any = None

    def describe(self) -> str:
        if self.args is None:
            return self.name
        if isinstance(self.args, str):
            return f"{self.name}({self.args})"
        return f"{self.name}({json.dumps(self.args, default=dict, sort_keys=True, ensure_ascii=False)})"


@dataclass(frozen=True)
class TransitionSpec:
    index: int
    event: str
    source: str
    dest: str
    actors: tuple[str, ...]
    label: str = ""
    step: str | None = None
    guards: tuple[GuardCall, ...] = ()


@dataclass(frozen=True)
class TimerSpec:
    state: str
    after: timedelta
    event: str


@dataclass(frozen=True)
class DocumentSpec:
    """One document of 上传审核: one upload slot with its own name, hint and accepted types."""

    key: str
    label: str
    hint: str = ""
    types: tuple[str, ...] = ("jpeg", "png")
    # Optional documents get a slot but 【提交审核】 does not wait for them.
    optional: bool = False


@dataclass(frozen=True)
class MaterialsSpec:
    """Which documents each applicant uploads (the flow's ``materials`` section).

    ``categories`` maps a 考生类别 to its documents; ``no_registry`` is added when no 学籍/学历
    record was found, ``correction`` when the student reported the record wrong, ``always``
    for everybody who uploads at all.
    """

    documents: Mapping[str, DocumentSpec] = field(default_factory=lambda: MappingProxyType({}))
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    no_registry: tuple[str, ...] = ()
    correction: tuple[str, ...] = ()
    always: tuple[str, ...] = ()

    def documents_for(self, category: str, xueji_status: str = "", xueji_answer: str = "") -> tuple[DocumentSpec, ...]:
        """The applicant's slots in order, each document once."""
        keys = list(self.categories.get(category, ()))
        if xueji_status == "not_found":
            keys += self.no_registry
        elif xueji_answer == "wrong":
            keys += self.correction
        if keys:
            keys += self.always
        return tuple(self.documents[k] for k in dict.fromkeys(keys) if k in self.documents)


@dataclass(frozen=True)
class OnsiteSpec:
    """现场确认 (the flow's ``onsite`` section): who must come to the 确认点 and what to bring."""

    categories: tuple[str, ...] = ()
    bring: tuple[str, ...] = ()
    # A booking can be changed or cancelled until this long before its slot starts.
    change_until: timedelta = timedelta(hours=2)


@dataclass(frozen=True)
class FlowSpec:
    flow: str
    title: str
    initial: str
    states: Mapping[str, StateSpec]
    transitions: tuple[TransitionSpec, ...]
    windows: Mapping[str, WindowSpec] = field(default_factory=lambda: MappingProxyType({}))
    stages: tuple[StageSpec, ...] = ()
    timers: tuple[TimerSpec, ...] = ()
    notify: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    materials: MaterialsSpec = field(default_factory=MaterialsSpec)
    onsite: OnsiteSpec = field(default_factory=OnsiteSpec)
    source: str = "<flow>"
    text: str = ""
    sha256: str = ""
    # Lookup tables built once in __post_init__ (declared so type checkers know them).
    _branch_index: Mapping[tuple[str, str], tuple[TransitionSpec, ...]] = field(init=False, repr=False, compare=False)
    _events_by_source: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def branches(self, event: str, source: str) -> tuple[TransitionSpec, ...]:
        """Transitions for ``event`` from ``source`` in declaration order (first passing wins)."""
        return self._branch_index.get((event, source), ())

    def events_from(self, source: str) -> tuple[str, ...]:
        return self._events_by_source.get(source, ())

    def timers_for(self, state: str) -> tuple[TimerSpec, ...]:
        return tuple(t for t in self.timers if t.state == state)

    @property
    def event_names(self) -> frozenset[str]:
        return frozenset(t.event for t in self.transitions)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], list[TransitionSpec]] = {}
        by_source: dict[str, list[str]] = {}
        for t in self.transitions:
            index.setdefault((t.event, t.source), []).append(t)
            events = by_source.setdefault(t.source, [])
            if t.event not in events:
                events.append(t.event)
        object.__setattr__(self, "_branch_index", {k: tuple(v) for k, v in index.items()})
        object.__setattr__(self, "_events_by_source", {k: tuple(v) for k, v in by_source.items()})

"""What changed between two flow versions: a structural diff plus the YAML line diff.

Used by `flask flow diff` (``to_text``) and the admin workbench (``to_dict``). Every entry
is keyed the way an admin reads a flow: states and windows by name, transitions by
``event: from → to`` (and their position among same-key branches, should a flow repeat
one), timers by state and event. Values are plain JSON (dates as ISO text, durations as
``24h``, guards as ``name(args)``), so both renderers show the same thing.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gzsb.workflow.spec import FlowSpec

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
SECTIONS = (
    "flow", "settings", "windows", "stages", "states", "transitions", "timers", "notify", "materials", "onsite",
)  # fmt: skip
# Sections whose entries are shown as ``section[key]``: their keys contain spaces or arrows.
_BRACKETED = frozenset({"transitions", "timers"})


@dataclass(frozen=True)
class Change:
    """One difference. ``attr`` is empty for a whole entry (added/removed) or a plain value
    (a setting, a notify template, the flow's title)."""

    section: str
    key: str
    kind: str
    attr: str = ""
    old: Any = None
    new: Any = None

    @property
    def path(self) -> str:
        if self.section == "flow":
            where = self.attr
        elif self.section in _BRACKETED:
            where = f"{self.section}[{self.key}]" + (f".{self.attr}" if self.attr else "")
        else:
            where = ".".join(part for part in (self.section, self.key, self.attr) if part)
        return where

    def to_text(self) -> str:
        if self.kind == ADDED:
            return f"{self.path}: added {_show(self.new)}"
        if self.kind == REMOVED:
            return f"{self.path}: removed {_show(self.old)}"
        return f"{self.path}: {_show(self.old)} → {_show(self.new)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "key": self.key,
            "kind": self.kind,
            "attr": self.attr,
            "path": self.path,
            "old": self.old,
            "new": self.new,
            "text": self.to_text(),
        }


@dataclass(frozen=True)
class FlowDiff:
    old_source: str
    old_sha256: str
    new_source: str
    new_sha256: str
    changes: tuple[Change, ...]
    yaml_diff: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.changes and not self.yaml_diff

    def __bool__(self) -> bool:
        return not self.empty

    def in_section(self, section: str, kind: str | None = None) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.section == section and (kind is None or c.kind == kind))

    def keys(self, section: str, kind: str) -> tuple[str, ...]:
        """Names of the entries added, removed or changed in ``section`` (each once)."""
        return tuple(dict.fromkeys(c.key for c in self.in_section(section, kind)))

    def to_text(self, *, yaml: bool = True) -> str:
        lines = [f"--- {self.old_source} ({self.old_sha256[:12]})", f"+++ {self.new_source} ({self.new_sha256[:12]})"]
        if self.changes:
            lines.extend(c.to_text() for c in self.changes)
        elif self.yaml_diff:
            lines.append("no structural changes (the YAML text differs)")
        else:
            lines.append("no changes")
        if yaml and self.yaml_diff:
            lines.append("")
            lines.extend(self.yaml_diff)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        summary = {
            section: {kind: list(self.keys(section, kind)) for kind in (ADDED, REMOVED, CHANGED)}
            for section in SECTIONS
        }
        return {
            "old": {"source": self.old_source, "sha256": self.old_sha256},
            "new": {"source": self.new_source, "sha256": self.new_sha256},
            "empty": self.empty,
            "sections": summary,
            "changes": [c.to_dict() for c in self.changes],
            "yaml_diff": list(self.yaml_diff),
        }


def diff_flows(old: FlowSpec, new: FlowSpec) -> FlowDiff:
    changes: list[Change] = []
    changes += _compare_values("flow", _meta(old), _meta(new), as_attrs=True)
    changes += _compare_values("settings", old.settings, new.settings)
    changes += _compare_entries("windows", _windows(old), _windows(new))
    changes += _compare_entries("stages", _stages(old), _stages(new))
    changes += _compare_entries("states", _states(old), _states(new))
    changes += _compare_entries("transitions", _transitions(old), _transitions(new))
    changes += _compare_entries("timers", _timers(old), _timers(new))
    changes += _compare_values("notify", old.notify, new.notify)
    changes += _compare_values("materials", _materials(old), _materials(new))
    changes += _compare_values("onsite", _onsite(old), _onsite(new))
    yaml_diff = difflib.unified_diff(
        old.text.splitlines(),
        new.text.splitlines(),
        fromfile=f"{old.source} ({old.sha256[:12]})",
        tofile=f"{new.source} ({new.sha256[:12]})",
        lineterm="",
    )
    return FlowDiff(old.source, old.sha256, new.source, new.sha256, tuple(changes), tuple(yaml_diff))


# -- each section as {key: {attr: plain value}} -------------------------------------------


def _meta(flow: FlowSpec) -> dict[str, Any]:
    return {"flow": flow.flow, "title": flow.title, "initial": flow.initial}


def _windows(flow: FlowSpec) -> dict[str, dict[str, Any]]:
    # A group's resolved dates, so that moving one group's opening shows as that change.
    return {
        name: {"opens": _plain(w.opens), "closes": _plain(w.closes)}
        | {f"{path}.{end}": _plain(getattr(g, end)) for path, g in w.groups() for end in ("opens", "closes")}
        for name, w in flow.windows.items()
    }


def _stages(flow: FlowSpec) -> dict[str, dict[str, Any]]:
    # The process page shows stages in order, so a move is a change too.
    return {
        s.key: {"label": s.label, "button": s.button, "optional": s.optional, "position": n}
        for n, s in enumerate(flow.stages, start=1)
    }


def _states(flow: FlowSpec) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "label": s.label,
            "page": s.page,
            "stage": s.stage,
            "final": s.final,
            # The 流程页面's texts, when given.
            **{k: v for k, v in (("status", s.status), ("waiting", s.waiting), ("button", s.button)) if v},
        }  # fmt: skip
        for name, s in flow.states.items()
    }


def _transitions(flow: FlowSpec) -> dict[str, dict[str, Any]]:
    """Keyed by ``event: from → to`` (``#2`` for a repeated key); ``branch`` is the position
    among the branches of the same event and source, which are tried in order."""
    out: dict[str, dict[str, Any]] = {}
    for t in flow.transitions:
        key = _unique(out, f"{t.event}: {t.source} → {t.dest}")
        branches = flow.branches(t.event, t.source)
        out[key] = {
            "actors": list(t.actors),
            "label": t.label,
            "step": t.step,
            "guards": [g.describe() for g in t.guards],
            "branch": f"{branches.index(t) + 1} of {len(branches)}",
        }
    return out


def _timers(flow: FlowSpec) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for timer in flow.timers:
        out[_unique(out, f"{timer.state}: {timer.event}")] = {"after": _plain(timer.after)}
    return out


def _unique(taken: Mapping[str, Any], key: str) -> str:
    n, candidate = 1, key
    while candidate in taken:
        n += 1
        candidate = f"{key} #{n}"
    return candidate


# -- comparing ------------------------------------------------------------------------------


def _compare_entries(
    section: str, old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]
) -> list[Change]:
    changes: list[Change] = []
    for key in _union(old, new):
        if key not in new:
            changes.append(Change(section, key, REMOVED, old=dict(old[key])))
        elif key not in old:
            changes.append(Change(section, key, ADDED, new=dict(new[key])))
        else:
            for attr in _union(old[key], new[key]):
                before, after = old[key].get(attr), new[key].get(attr)
                if before != after:
                    changes.append(Change(section, key, CHANGED, attr, before, after))
    return changes


def _materials(flow: FlowSpec) -> dict[str, Any]:
    """The materials section by key: each document's fields, the lists of keys."""
    m = flow.materials
    documents = {
        k: {"label": d.label, "hint": d.hint, "types": list(d.types), "optional": d.optional}
        for k, d in m.documents.items()
    }
    lists = {"no_registry": m.no_registry, "correction": m.correction, "always": m.always}
    return {
        **{f"documents.{k}": v for k, v in documents.items()},
        **{f"categories.{c}": list(keys) for c, keys in m.categories.items()},
        **{k: list(v) for k, v in lists.items() if v},
    }


def _onsite(flow: FlowSpec) -> dict[str, Any]:
    o = flow.onsite
    return {"categories": list(o.categories), "bring": list(o.bring), "change_until": o.change_until}


def _compare_values(
    section: str, old: Mapping[str, Any], new: Mapping[str, Any], as_attrs: bool = False
) -> list[Change]:
    changes: list[Change] = []
    for key in _union(old, new):
        before = _plain(old[key]) if key in old else None
        after = _plain(new[key]) if key in new else None
        key_field, attr = ("", key) if as_attrs else (key, "")
        if key not in new:
            changes.append(Change(section, key_field, REMOVED, attr, old=before))
        elif key not in old:
            changes.append(Change(section, key_field, ADDED, attr, new=after))
        elif before != after:
            changes.append(Change(section, key_field, CHANGED, attr, before, after))
    return changes


def _union(old: Iterable[str], new: Iterable[str]) -> list[str]:
    """Keys in the old flow's order, then the new flow's additions in theirs."""
    return list(dict.fromkeys([*old, *new]))


def _plain(value: Any) -> Any:
    """Frozen flow values (MappingProxyType, tuples, dates, durations) as plain JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _duration(value)
    return value


def _duration(value: timedelta) -> str:
    """As the YAML would say it: hours up to two days (``24h``, ``48h``), then days."""
    seconds = int(value.total_seconds())
    if seconds % 86400 == 0 and seconds > 2 * 86400:
        return f"{seconds // 86400}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)

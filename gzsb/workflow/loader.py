"""YAML text → marshmallow schema → FlowSpec. The only module that touches raw YAML.

Structural problems (unknown keys, wrong types, YAML 1.1 booleans) are reported here with
their key path; name and graph checks live in ``validate``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from gzsb.errors import FlowError
from gzsb.workflow.spec import (
    ROLES,
    DocumentSpec,
    FlowSpec,
    GuardCall,
    MaterialsSpec,
    OnsiteSpec,
    StageSpec,
    StateSpec,
    TimerSpec,
    TransitionSpec,
    WindowOverride,
    WindowSpec,
)

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
NAME_RULE = "lower-case letters, digits and _, starting with a letter"
YAML11_BOOLEANS = {"y", "yes", "n", "no", "on", "off", "true", "false"}


class _StrictLoader(yaml.SafeLoader):
    """YAML 1.2-style scalars: only true/false are booleans, timestamps stay strings
    (marshmallow parses them and insists on a zone), duplicate keys are an error."""


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class StrictBoolean(fields.Boolean):
    default_error_messages = {"invalid": "must be true or false (YAML 1.1 yes/no/on/off are not booleans here)"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(truthy={True}, falsy={False}, **kwargs)


class Name(fields.String):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            validate=validate.Regexp(NAME, error=f"{{input!r}} is not a valid name ({NAME_RULE})"), **kwargs
        )


class Duration(fields.Field):
    """``90s``, ``30m``, ``24h``, ``7d`` → timedelta."""

    UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> timedelta:
        match = re.fullmatch(r"(\d+)\s*([smhd])", str(value).strip())
        if not match or int(match.group(1)) == 0:
            raise ValidationError(f"{value!r} is not a duration; write e.g. 90s, 30m, 24h or 7d")
        return timedelta(**{self.UNITS[match.group(2)]: int(match.group(1))})


class GuardCallField(fields.Field):
    """A guard is ``name`` or ``{name: args}`` (exactly one key)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> GuardCall:
        if isinstance(value, str):
            return GuardCall(value)
        if isinstance(value, dict) and len(value) == 1:
            ((name, args),) = value.items()
            if isinstance(name, str):
                return GuardCall(name, _freeze(args))
        raise ValidationError("a guard is a name or a mapping with one key {name: arguments}")


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class _Strict(Schema):
    class Meta:
        unknown = RAISE


_WHEN: dict[str, Any] = {
    "invalid": "not a date-time with a zone; write e.g. 2027-01-05T09:00:00+08:00",
    "invalid_awareness": "needs a zone; write e.g. 2027-01-05T09:00:00+08:00",
}


class WindowOverrideSchema(_Strict):
    opens = fields.AwareDateTime(format="iso", error_messages=_WHEN)
    closes = fields.AwareDateTime(format="iso", error_messages=_WHEN)

    @validates_schema
    def not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("give opens, closes or both (what is left out is the window's own)")


POINT_CODE = validate.Regexp(
    r"^[A-Z0-9]{2,16}$", error="{input!r} is not a 确认点 code (capitals and digits, e.g. NK01)"
)
DISTRICT_CODE = validate.Regexp(
    r"^[0-9]{2}(?:[0-9]{2}){0,2}$",
    error="{input!r} is not a district code: 2, 4 or 6 digits of the ID number (e.g. 12, 1201, 120104)",
)


class WindowSchema(_Strict):
    opens = fields.AwareDateTime(required=True, format="iso", error_messages=_WHEN)
    closes = fields.AwareDateTime(required=True, format="iso", error_messages=_WHEN)
    by_point = fields.Dict(
        keys=fields.String(validate=POINT_CODE), values=fields.Nested(WindowOverrideSchema), load_default=dict
    )
    by_district = fields.Dict(
        keys=fields.String(validate=DISTRICT_CODE), values=fields.Nested(WindowOverrideSchema), load_default=dict
    )


class StageSchema(_Strict):
    key = Name(required=True)
    label = fields.String(required=True, validate=validate.Length(min=1))
    button = fields.String(load_default="去填写")
    optional = StrictBoolean(load_default=False)


class StateSchema(_Strict):
    label = fields.String(required=True, validate=validate.Length(min=1))
    page = Name(required=True)
    stage = Name(load_default=None)
    final = StrictBoolean(load_default=False)
    status = fields.String(load_default="", validate=validate.Length(max=80))
    waiting = fields.String(load_default="", validate=validate.Length(max=20))
    button = fields.String(load_default="", validate=validate.Length(max=12))


class TransitionSchema(_Strict):
    event = Name(required=True)
    source = fields.String(required=True, data_key="from")
    dest = fields.String(required=True, data_key="to")
    actors = fields.List(
        fields.String(validate=validate.OneOf(ROLES, error=f"unknown role {{input!r}}; known: {', '.join(ROLES)}")),
        required=True,
        validate=validate.Length(min=1, error="name at least one role"),
    )
    label = fields.String(load_default="")
    step = fields.String(load_default=None)
    guards = fields.List(GuardCallField(), load_default=list)


class TimerSchema(_Strict):
    state = fields.String(required=True, data_key="in")
    after = Duration(required=True)
    event = Name(required=True)


IMAGE_TYPES = ("jpeg", "png")  # what gzsb.common.uploads accepts (by content)
_TYPES = ", ".join(IMAGE_TYPES)


class DocumentSchema(_Strict):
    label = fields.String(required=True, validate=validate.Length(min=1, max=40))
    hint = fields.String(load_default="", validate=validate.Length(max=200))
    types = fields.List(
        fields.String(validate=validate.OneOf(IMAGE_TYPES, error=f"unknown type {{input!r}}; known: {_TYPES}")),
        load_default=lambda: list(IMAGE_TYPES),
        validate=validate.Length(min=1),
    )
    optional = StrictBoolean(load_default=False)


class MaterialsSchema(_Strict):
    documents = fields.Dict(keys=Name(), values=fields.Nested(DocumentSchema), load_default=dict)
    categories = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1)), values=fields.List(Name()), load_default=dict
    )
    no_registry = fields.List(Name(), load_default=list)
    correction = fields.List(Name(), load_default=list)
    always = fields.List(Name(), load_default=list)


class OnsiteSchema(_Strict):
    categories = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    bring = fields.List(fields.String(validate=validate.Length(min=1, max=100)), load_default=list)
    change_until = Duration(load_default=lambda: timedelta(hours=2))


class FlowSchema(_Strict):
    flow = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]*$"))
    title = fields.String(required=True)
    initial = fields.String(required=True)
    windows = fields.Dict(keys=Name(), values=fields.Nested(WindowSchema), load_default=dict)
    stages = fields.List(fields.Nested(StageSchema), load_default=list)
    states = fields.Dict(keys=Name(), values=fields.Nested(StateSchema), required=True, validate=validate.Length(min=1))
    transitions = fields.List(fields.Nested(TransitionSchema), required=True)
    timers = fields.List(fields.Nested(TimerSchema), load_default=list)
    notify = fields.Dict(keys=fields.String(), values=Name(), load_default=dict)
    settings = fields.Dict(keys=Name(), load_default=dict)
    materials = fields.Nested(MaterialsSchema, load_default=dict)
    onsite = fields.Nested(OnsiteSchema, load_default=dict)


_MISSING = "required key is missing"


def _child(node: Any, key: Any) -> Any:
    """The schema or field that validated ``key`` below ``node`` (None when unknown)."""
    if isinstance(node, Schema):
        for name, f in node.fields.items():
            if (f.data_key or name) == key:
                return f.schema if isinstance(f, fields.Nested) else f
        return None
    if isinstance(node, fields.List):
        inner = node.inner
        return inner.schema if isinstance(inner, fields.Nested) else inner
    if isinstance(node, fields.Dict):
        value = node.value_field
        return value.schema if isinstance(value, fields.Nested) else value
    return None


def _known_keys(schema: Schema) -> str:
    return ", ".join(sorted(f.data_key or name for name, f in schema.fields.items()))


def flatten_errors(errors: Any, node: Any = None, path: str = "") -> list[str]:
    """marshmallow's nested error dict → ``key.path[3].sub: message`` lines, with unknown
    keys named together with the keys that would be valid there."""
    if not isinstance(errors, dict):
        messages = errors if isinstance(errors, list) else [errors]
        return [
            f"{path or '(top)'}: {_MISSING if msg == 'Missing data for required field.' else msg}" for msg in messages
        ]
    lines: list[str] = []
    for key, sub in errors.items():
        if key == "_schema":
            lines.extend(flatten_errors(sub, node, path))
            continue
        if isinstance(node, fields.Dict) and isinstance(sub, dict) and set(sub) <= {"key", "value"}:
            # marshmallow Dict errors: {dict_key: {"key": [...], "value": {...}}}
            here = f"{path}.{key}"
            if "key" in sub:
                lines.extend(flatten_errors(sub["key"], None, f"{here} (the key)"))
            if "value" in sub:
                lines.extend(flatten_errors(sub["value"], _child(node, key), here))
            continue
        part = f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
        child = _child(node, key)
        if isinstance(node, Schema) and child is None and sub == ["Unknown field."]:
            hint = " (YAML 1.1 would read it as a boolean; quote it)" if str(key).lower() in YAML11_BOOLEANS else ""
            lines.append(f"{path or '(top)'}: unknown key {key!r}{hint}; known: {_known_keys(node)}")
            continue
        lines.extend(flatten_errors(sub, child, f"{path}{part}"))
    return lines


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FlowError([f"{source}: {where}not valid YAML: {problem}"]) from None


def load_flow(text: str, source: str = "<flow>") -> FlowSpec:
    """Parse and structurally check a flow. Raises FlowError listing every problem."""
    raw = parse_yaml(text, source)
    if not isinstance(raw, dict):
        raise FlowError([f"{source}: (top): a flow is a mapping with keys flow, title, initial, states, transitions"])
    try:
        data = FlowSchema().load(raw)
    except ValidationError as exc:
        raise FlowError([f"{source}: {line}" for line in flatten_errors(exc.messages, FlowSchema())]) from None
    return _build(data, text, source)


def load_flow_file(path: str | Path) -> FlowSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError([f"{path.name}: cannot read: {exc.strerror}"]) from None
    return load_flow(text, path.name)


def flow_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _window(name: str, raw: dict[str, Any]) -> WindowSpec:
    def overrides(key: str) -> MappingProxyType[str, WindowOverride]:
        return MappingProxyType({code: WindowOverride(**times) for code, times in raw[key].items()})

    return WindowSpec(name, raw["opens"], raw["closes"], overrides("by_point"), overrides("by_district"))


def _build(data: dict[str, Any], text: str, source: str) -> FlowSpec:
    return FlowSpec(
        flow=data["flow"],
        title=data["title"],
        initial=data["initial"],
        states=MappingProxyType({name: StateSpec(name=name, **s) for name, s in data["states"].items()}),
        transitions=tuple(
            TransitionSpec(index=i, **{**t, "actors": tuple(t["actors"]), "guards": tuple(t["guards"])})
            for i, t in enumerate(data["transitions"])
        ),
        windows=MappingProxyType({name: _window(name, w) for name, w in data["windows"].items()}),
        stages=tuple(StageSpec(**s) for s in data["stages"]),
        timers=tuple(TimerSpec(**t) for t in data["timers"]),
        notify=MappingProxyType(dict(data["notify"])),
        settings=_freeze(data["settings"]),
        materials=_materials(data["materials"]),
        onsite=OnsiteSpec(
            categories=tuple(data["onsite"].get("categories", ())),
            bring=tuple(data["onsite"].get("bring", ())),
            change_until=data["onsite"].get("change_until", timedelta(hours=2)),
        ),
        source=source,
        text=text,
        sha256=flow_sha256(text),
    )


def _materials(raw: dict[str, Any]) -> MaterialsSpec:
    documents = {
        key: DocumentSpec(key=key, **{**doc, "types": tuple(doc.get("types") or IMAGE_TYPES)})
        for key, doc in (raw.get("documents") or {}).items()
    }
    return MaterialsSpec(
        documents=MappingProxyType(documents),
        categories=MappingProxyType({c: tuple(keys) for c, keys in (raw.get("categories") or {}).items()}),
        no_registry=tuple(raw.get("no_registry") or ()),
        correction=tuple(raw.get("correction") or ()),
        always=tuple(raw.get("always") or ()),
    )

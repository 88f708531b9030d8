"""marshmallow fields with Chinese messages, shared by the step schemas."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from gzsb.accounts.validators import ascii_digits, normalize, parse_id_number

REQUIRED = {"required": "此项为必填项", "null": "此项为必填项"}


class StepSchema(Schema):
    class Meta:
        # Forms also post csrf_token and version; those belong to the web layer.
        unknown = EXCLUDE


def text(label: str, *, required: bool = True, max_length: int = 100, **kw: Any) -> fields.String:
    rules = [validate.Length(max=max_length, error=f"{label}不能超过{max_length}个字")]
    if required:
        rules.append(validate.Length(min=1, error=f"请填写{label}"))
    return fields.String(
        required=required,
        validate=rules,
        error_messages={**REQUIRED, "invalid": f"{label}格式不正确"},
        metadata={"label": label, **kw.pop("metadata", {})},
        **kw,
    )


def choice(label: str, options: tuple[str, ...], *, required: bool = True) -> fields.String:
    return fields.String(
        required=required,
        validate=validate.OneOf(options, error=f"请选择{label}"),
        error_messages={**REQUIRED, "invalid": f"请选择{label}"},
        metadata={"label": label},
    )


class Normalized(fields.String):
    """NFKC-normalised and stripped before validation (fullwidth digits become ASCII)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return normalize(super()._deserialize(value, attr, data, **kwargs), 1000)


class AsciiInteger(fields.Integer):
    """A typed whole number: ASCII digits only after NFKC (``int()`` would take any script's digits)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = normalize(value, 20)
            if not ascii_digits(value.removeprefix("-")):
                raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def pattern(label: str, regex: str, message: str, **kw: Any) -> Normalized:
    """A string matching ``regex`` (write ``[0-9]``, never ``\\d``, which takes other scripts' digits)."""
    return Normalized(
        required=True,
        validate=validate.Regexp(regex, error=message),
        error_messages={**REQUIRED, "invalid": message},
        metadata={"label": label, **kw.pop("metadata", {})},
        **kw,
    )


class IdNumberField(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        raw = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_id_number(raw).value
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def agreed(label: str) -> fields.Boolean:
    return fields.Boolean(
        required=True,
        validate=validate.Equal(True, error=f"请先阅读并勾选{label}"),
        truthy={True, "true", "on", "1", "yes"},
        falsy={False, "false", "off", "0", "no", ""},
        error_messages={"required": f"请先阅读并勾选{label}", "invalid": f"请先阅读并勾选{label}"},
        metadata={"label": label},
    )


def row_id(label: str, message: str) -> fields.Integer:
    """The id of a row the form picked (a slot, a request): a positive integer, sent as text."""
    return fields.Integer(
        required=True,
        strict=False,
        validate=validate.Range(min=1, error=message),
        error_messages={**REQUIRED, "invalid": message},
        metadata={"label": label},
    )

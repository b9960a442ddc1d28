"""Turn pydantic validation errors into the one-line messages the CLI prints.

Also the two rules every scenario section and plug-in parameter model shares (:class:`Strict`):
a boolean is never a number (pydantic's lax mode would read ``rounds = true`` as 1), and a float
must be finite (``learning_rate = inf`` would reach the clients as JSON ``null``).
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to about ``limit`` characters so an error stays one readable line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}... ({len(text)} characters)"


class FieldError(ValueError):
    """Raised by cross-field validators with a message that already names the field."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        super().__init__(f"{field}: got {shown(value)}; {allowed}")


def _members(annotation: Any) -> tuple[Any, ...]:
    """The plain types of a field's annotation (through ``Annotated`` and unions)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return tuple(m for arg in typing.get_args(annotation) for m in _members(arg))
    return (annotation,)


def _refuses_bool(annotation: Any) -> bool:
    """A number field (int, float, or a union with one) that does not also take a boolean."""
    members = _members(annotation)
    if any(m is bool or m is Any for m in members):
        return False
    return any(isinstance(m, type) and issubclass(m, (int, float)) for m in members)


class Strict(BaseModel):
    """Base of every scenario section and plug-in parameter model.

    Unknown keys are errors, values are frozen, floats must be finite, and a boolean is refused
    where the field wants a number.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        if isinstance(value, bool) and name and _refuses_bool(cls.model_fields[name].annotation):
            raise PydanticCustomError("bool_not_number", "must be a number, not a boolean")
        return value


def _location(loc: tuple[int | str, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    parts += [str(p) for p in loc]
    return ".".join(parts) or "<root>"


def one_line(error: ValidationError, prefix: str = "") -> str:
    """Render the first error of ``error`` as ``field: got VALUE; MESSAGE``.

    ``prefix`` is the dotted path of the model inside the scenario (``defense.params``), so the
    message always names the field as the user wrote it in the TOML file.
    """
    first: Any = error.errors(include_url=False)[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):
        # Cross-field validators know the field better than pydantic's location does.
        return str(cause)
    field = _location(tuple(first["loc"]), prefix)
    kind = first["type"]
    if kind == "extra_forbidden":
        value = shown(first["input"])
        return f"{field}: unknown key (value {value}); remove it or fix the spelling"
    if kind == "missing":
        return f"{field}: required field is missing"
    return f"{field}: got {shown(first['input'])}; {first['msg']}"

"""Turn pydantic validation errors into the one-line messages the CLI prints."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class FieldError(ValueError):
    """Raised by cross-field validators with a message that already names the field."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        super().__init__(f"{field}: got {value!r}; {allowed}")


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
        return f"{field}: unknown key (value {first['input']!r}); remove it or fix the spelling"
    if kind == "missing":
        return f"{field}: required field is missing"
    return f"{field}: got {first['input']!r}; {first['msg']}"

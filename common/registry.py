"""One registry per plug-in kind (aggregators, attacks, datasets, partitioners, models).

Each entry couples a name with the object it builds and a pydantic parameter model with
``extra="forbid"``, so unknown or out-of-range parameters fail once, before any simulation.
A failed lookup names what was typed and lists the valid names.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field, ValidationError

from common.errors import ConfigError
from common.validation import Strict, one_line

T = TypeVar("T")


class Params(Strict):
    """Base class of every plug-in parameter model: unknown keys are errors, values frozen,
    floats finite, and no boolean where a number is expected (:class:`Strict`)."""


class NoParams(Params):
    """Parameter model of a plug-in that takes no parameters."""


class _ClassLabelMarker:
    """Metadata of :data:`ClassLabel`: what the scenario checks look for."""


_CLASS_LABEL = _ClassLabelMarker()

ClassLabel = Annotated[int, Field(ge=0), _CLASS_LABEL]
"""A plug-in parameter that names a class of the scenario's dataset (a label-flip or backdoor
target): the scenario checks refuse a value >= the dataset's number of classes before Ray
starts, since the plug-in itself only learns the number of classes inside a worker."""


def _marked(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        return _CLASS_LABEL in annotation.__metadata__
    return any(_marked(arg) for arg in typing.get_args(annotation))


def class_labels(params: BaseModel) -> dict[str, int]:
    """Field name -> value of every :data:`ClassLabel` parameter of ``params`` that is set."""
    found = {}
    for name, info in type(params).model_fields.items():
        value = getattr(params, name)
        if isinstance(value, int) and (_CLASS_LABEL in info.metadata or _marked(info.annotation)):
            found[name] = value
    return found


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered plug-in: its name, the object it builds, its parameter model, its tags."""

    name: str
    target: T
    params: type[BaseModel]
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """First line of the plug-in's docstring, for ``fedshield list``."""
        doc = getattr(self.target, "__doc__", None) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def describe_params(self) -> str:
        """``name=default`` pairs of the parameter model, for ``fedshield list``."""
        parts = []
        for pname, info in self.params.model_fields.items():
            default = "required" if info.is_required() else repr(info.default)
            parts.append(f"{pname}={default}")
        return ", ".join(parts)


class Registry(Mapping[str, Entry[T]]):
    """A name -> :class:`Entry` mapping for one plug-in kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, params: type[BaseModel] = NoParams, **tags: str
    ) -> Callable[[T], T]:
        """Decorator that registers ``target`` under ``name`` with its parameter model."""

        def decorate(target: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, target, params, dict(tags))
            return target

        return decorate

    def __getitem__(self, name: str) -> Entry[T]:
        return self.resolve(name)

    def resolve(self, name: str, where: str = "") -> Entry[T]:
        """The entry called ``name``; ``where`` (e.g. ``data.dataset``) prefixes the error."""
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries))
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}unknown {self.kind} {name!r}; valid: {valid}") from None

    def __contains__(self, name: object) -> bool:
        # Mapping's default goes through __getitem__, whose miss is a ConfigError, not a KeyError.
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def parse_params(self, name: str, params: Mapping[str, Any], where: str) -> BaseModel:
        """Validate ``params`` against ``name``'s model; ``where`` is the field path for errors."""
        entry = self.resolve(name, where.removesuffix(".params"))
        try:
            return entry.params.model_validate(dict(params))
        except ValidationError as err:
            raise ConfigError(one_line(err, where)) from None

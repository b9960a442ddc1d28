"""The attack registry and the one validated way to build an attack from a scenario."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from attacks.base import Attack
from common.registry import NoParams, Registry

ATTACKS: Registry[type[Attack[Any]]] = Registry("attack")
"""name -> Entry; ``Entry.target`` is the attack class, tags ``kind`` and ``threat_model``."""

A = TypeVar("A", bound=type[Attack[Any]])


def register_attack(name: str, params: type[BaseModel] = NoParams) -> Callable[[A], A]:
    """Register an attack class under ``name``; its kind and threat model become the tags."""

    def decorate(cls: A) -> A:
        ATTACKS.register(name, params, kind=cls.kind.value, threat_model=cls.threat_model.value)(
            cls
        )
        return cls

    return decorate


def get_attack(name: str, *, where: str = "attack.params", **params: Any) -> Attack[Any]:
    """The attack ``name`` built from validated ``params``.

    Raises :class:`~common.errors.ConfigError` naming ``where.<field>`` for a bad parameter,
    or listing the valid names for an unknown attack.
    """
    parsed = ATTACKS.parse_params(name, params, where=where)
    return ATTACKS[name].target(parsed)

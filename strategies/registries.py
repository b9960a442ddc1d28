"""The plug-in registries of this package: aggregation rules, pre-aggregators and server
optimisers.

A stage class is registered as its own parameter model: ``get_aggregator`` validates the
scenario's parameters into an instance of it, which is the stage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from common.registry import Registry
from strategies.base import PreStage, RuleStage, ServerStage

AGGREGATORS: Registry[type[RuleStage[Any]]] = Registry("aggregator")
PRE_AGGREGATORS: Registry[type[PreStage[Any]]] = Registry("pre-aggregator")
SERVER_OPTIMIZERS: Registry[type[ServerStage[Any]]] = Registry("server optimizer")

R = TypeVar("R", bound=type[RuleStage[Any]])
P = TypeVar("P", bound=type[PreStage[Any]])
Opt = TypeVar("Opt", bound=type[ServerStage[Any]])


def aggregator(name: str, **tags: str) -> Callable[[R], R]:
    """Register the decorated rule class under ``name``, as its own parameter model."""

    def decorate(cls: R) -> R:
        AGGREGATORS.register(name, cls, **tags)(cls)
        return cls

    return decorate


def pre_aggregator(name: str, **tags: str) -> Callable[[P], P]:
    """Register the decorated pre-aggregator class under ``name``, as its own parameter model."""

    def decorate(cls: P) -> P:
        PRE_AGGREGATORS.register(name, cls, **tags)(cls)
        return cls

    return decorate


def server_optimizer(name: str) -> Callable[[Opt], Opt]:
    """Register the decorated server optimiser class under ``name``, as its own parameter model."""

    def decorate(cls: Opt) -> Opt:
        SERVER_OPTIMIZERS.register(name, cls, kind="server_optimizer")(cls)
        return cls

    return decorate

"""Robust aggregation library: pure numpy rules over stacked update deltas, and their chains.

>>> import numpy as np, strategies
>>> krum = strategies.get_aggregator("krum", num_byzantine=1)
>>> krum.min_clients()
5

Importing the rule modules below registers them in :data:`AGGREGATORS` and
:data:`PRE_AGGREGATORS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from strategies import (
    averaging,
    coordinatewise,
    filtering,
    iterative,
    pre_aggregators,
    selection,
    trust,
)
from strategies.base import (
    Aggregate,
    Chain,
    Counts,
    FunctionPreAggregator,
    FunctionRule,
    PreParams,
    Rule,
    RuleParams,
    Updates,
)
from strategies.registries import AGGREGATORS, PRE_AGGREGATORS

__all__ = [
    "AGGREGATORS",
    "PRE_AGGREGATORS",
    "Aggregate",
    "Counts",
    "Rule",
    "Updates",
    "build_chain",
    "get_aggregator",
    "get_pre_aggregator",
    "averaging",
    "coordinatewise",
    "filtering",
    "iterative",
    "pre_aggregators",
    "selection",
    "trust",
]


def _rule(name: str, params: Mapping[str, Any], where: str) -> FunctionRule:
    entry = AGGREGATORS.resolve(name, f"{where}.aggregator")
    parsed = AGGREGATORS.parse_params(name, params, where=f"{where}.params")
    assert isinstance(parsed, RuleParams)  # every aggregator registers a RuleParams model
    return FunctionRule(name, entry.target, parsed)


def get_pre_aggregator(
    name: str, params: Mapping[str, Any], *, where: str = "defense.pre[0]"
) -> FunctionPreAggregator:
    """The pre-aggregator ``name`` with validated ``params`` (errors name ``where.params.*``)."""
    entry = PRE_AGGREGATORS.resolve(name, f"{where}.name")
    parsed = PRE_AGGREGATORS.parse_params(name, params, where=f"{where}.params")
    assert isinstance(parsed, PreParams)  # every pre-aggregator registers a PreParams model
    return FunctionPreAggregator(name, entry.target, parsed)


def get_aggregator(name: str, /, **params: Any) -> Rule:
    """The rule ``name`` with validated keyword ``params``; bad ones raise one-line ConfigError.

    ``get_aggregator("krum", num_byzantine=2)(updates, num_examples)`` aggregates one round.
    """
    return _rule(name, params, "defense")


def build_chain(
    name: str,
    params: Mapping[str, Any],
    pre: Sequence[tuple[str, Mapping[str, Any]]] = (),
    *,
    where: str = "defense",
) -> Rule:
    """Pre-aggregators ``pre`` applied in order, then rule ``name``.

    Errors name the scenario field: ``{where}.params.num_byzantine`` for the rule,
    ``{where}.pre[i].params.bucket_size`` for the i-th pre-aggregator. Without ``pre`` the
    rule itself is returned. The chain's ``min_clients()`` is its strictest bound.
    """
    rule = _rule(name, params, where)
    stages = [
        get_pre_aggregator(stage, stage_params, where=f"{where}.pre[{index}]")
        for index, (stage, stage_params) in enumerate(pre)
    ]
    if not stages:
        return rule
    return Chain("+".join([s.name for s in stages] + [name]), tuple(stages), rule)

"""Robust aggregation library: pure numpy rules over stacked update deltas, and their chains.

>>> import numpy as np, strategies
>>> krum = strategies.get_aggregator("krum", num_byzantine=1)
>>> krum.min_clients()
5

Importing the stage modules below registers them in :data:`AGGREGATORS` and
:data:`PRE_AGGREGATORS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from strategies import (
    averaging,
    coordinatewise,
    filtering,
    flame,
    iterative,
    pre_aggregators,
    selection,
    signguard,
    trust,
    weak_dp,
)
from strategies.base import (
    Aggregate,
    ChainState,
    Counts,
    EmptyState,
    PreStage,
    Rule,
    RuleStage,
    Updates,
    as_aggregator,
)
from strategies.chain import Chain
from strategies.registries import AGGREGATORS, PRE_AGGREGATORS

__all__ = [
    "AGGREGATORS",
    "PRE_AGGREGATORS",
    "Aggregate",
    "Chain",
    "ChainState",
    "Counts",
    "EmptyState",
    "PreStage",
    "Rule",
    "RuleStage",
    "Updates",
    "as_aggregator",
    "build_chain",
    "get_aggregator",
    "get_pre_aggregator",
    "averaging",
    "coordinatewise",
    "filtering",
    "flame",
    "iterative",
    "pre_aggregators",
    "selection",
    "signguard",
    "trust",
    "weak_dp",
]


def _rule(name: str, params: Mapping[str, Any], where: str) -> RuleStage[Any]:
    AGGREGATORS.resolve(name, f"{where}.aggregator")
    parsed = AGGREGATORS.parse_params(name, params, where=f"{where}.params")
    assert isinstance(parsed, RuleStage)  # every aggregator class is its own parameter model
    return parsed


def get_pre_aggregator(
    name: str, params: Mapping[str, Any], *, where: str = "defense.pre[0]"
) -> PreStage[Any]:
    """The pre-aggregator ``name`` with validated ``params`` (errors name ``where.params.*``)."""
    PRE_AGGREGATORS.resolve(name, f"{where}.name")
    parsed = PRE_AGGREGATORS.parse_params(name, params, where=f"{where}.params")
    assert isinstance(parsed, PreStage)  # every pre-aggregator class is its own parameter model
    return parsed


def get_aggregator(name: str, /, **params: Any) -> Rule:
    """The rule ``name`` with validated keyword ``params``; bad ones raise one-line ConfigError.

    ``get_aggregator("krum", num_byzantine=2)(updates, num_examples)`` aggregates one round.
    """
    return Chain(name, (), _rule(name, params, "defense"))


def build_chain(
    name: str,
    params: Mapping[str, Any],
    pre: Sequence[tuple[str, Mapping[str, Any]]] = (),
    *,
    where: str = "defense",
) -> Rule:
    """Pre-aggregators ``pre`` applied in order, then rule ``name``.

    Errors name the scenario field: ``{where}.params.num_byzantine`` for the rule,
    ``{where}.pre[i].params.bucket_size`` for the i-th pre-aggregator. The chain's
    ``min_clients()`` is its strictest bound and its state the tuple of its stages' states.
    """
    rule = _rule(name, params, where)
    stages = tuple(
        get_pre_aggregator(stage, stage_params, where=f"{where}.pre[{index}]")
        for index, (stage, stage_params) in enumerate(pre)
    )
    return Chain("+".join([stage for stage, _ in pre] + [name]), stages, rule)

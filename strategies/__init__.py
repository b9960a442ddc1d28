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
    auror,
    averaging,
    clustering,
    coordinatewise,
    deepsight,
    filtering,
    flame,
    flare,
    fldetector,
    foolsgold,
    indicator,
    iterative,
    lasa,
    pre_aggregators,
    rflbat,
    robustlr,
    selection,
    server_opt,
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
    ServerStage,
    Updates,
)
from strategies.chain import Chain
from strategies.layout import Inspection, Layout
from strategies.registries import AGGREGATORS, PRE_AGGREGATORS, SERVER_OPTIMIZERS
from strategies.view import as_aggregator

__all__ = [
    "AGGREGATORS",
    "PRE_AGGREGATORS",
    "SERVER_OPTIMIZERS",
    "Aggregate",
    "Chain",
    "ChainState",
    "Counts",
    "EmptyState",
    "PreStage",
    "Rule",
    "RuleStage",
    "ServerStage",
    "Updates",
    "Inspection",
    "Layout",
    "as_aggregator",
    "build_chain",
    "get_aggregator",
    "get_pre_aggregator",
    "get_server_optimizer",
    "auror",
    "averaging",
    "clustering",
    "coordinatewise",
    "deepsight",
    "filtering",
    "flame",
    "flare",
    "fldetector",
    "foolsgold",
    "indicator",
    "iterative",
    "lasa",
    "pre_aggregators",
    "rflbat",
    "robustlr",
    "selection",
    "server_opt",
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


def get_server_optimizer(
    name: str, params: Mapping[str, Any], *, where: str = "server_optimizer"
) -> ServerStage[Any]:
    """The server optimiser ``name`` with validated ``params`` (errors name ``where.*``)."""
    SERVER_OPTIMIZERS.resolve(name, f"{where}.name")
    parsed = SERVER_OPTIMIZERS.parse_params(name, params, where=f"{where}.params")
    assert isinstance(parsed, ServerStage)  # every optimiser class is its own parameter model
    return parsed


def build_chain(
    name: str,
    params: Mapping[str, Any],
    pre: Sequence[tuple[str, Mapping[str, Any]]] = (),
    *,
    where: str = "defense",
    post: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> Rule:
    """Pre-aggregators ``pre`` applied in order, then rule ``name``, then the server
    optimisers ``post`` (``[("fedadam", {"eta": 0.01})]``; the name ``"none"`` is skipped).

    Errors name the scenario field: ``{where}.params.num_byzantine`` for the rule,
    ``{where}.pre[i].params.bucket_size`` for the i-th pre-aggregator,
    ``server_optimizer.params.eta`` for an optimiser. The chain's ``min_clients()`` is its
    strictest bound and its state the tuple of its stages' states.
    """
    rule = _rule(name, params, where)
    stages = tuple(
        get_pre_aggregator(stage, stage_params, where=f"{where}.pre[{index}]")
        for index, (stage, stage_params) in enumerate(pre)
    )
    optimisers = [(stage, stage_params) for stage, stage_params in post if stage != "none"]
    servers = tuple(get_server_optimizer(stage, p) for stage, p in optimisers)
    label = "+".join([stage for stage, _ in pre] + [name] + [stage for stage, _ in optimisers])
    return Chain(label, stages, rule, servers)

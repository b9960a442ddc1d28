"""Theoretical breakdown points of a scenario's aggregation chain, from the rules' own bounds.

The breakdown point is the largest share of Byzantine clients among the ``n`` updates of a
round that a rule's guarantee still covers. It is derived, not tabulated, wherever a stage
declares its bound through ``num_byzantine`` (``strategies/``: Krum ``n >= 2f+3``, Bulyan
``n >= 4f+3``, Multi-Krum ``n >= max(2f+3, m+f)``, NNM ``n >= 2f+1``, DnC ``n >= floor(cf)+1``):
``f* = max{f : chain(num_byzantine=f).min_clients() <= n}`` and the point is ``f*/n``, with
every stage that has ``num_byzantine`` given the same ``f`` and the chain's own
``min_clients`` composing the stages (bucketing's ``ceil(n/s)`` included). For Krum, n = 10
gives ``f* = 3``: 0.3.

Rules without such a bound: the trimmed mean tolerates exactly the ``b`` it trims
(``beta = b/n``, Yin et al. 2018); the coordinate-wise and the geometric median have the
classical breakdown point 1/2 (Rousseeuw and Leroy 1987; Lopuhaä and Rousseeuw 1991), the mean
0 (one client moves it anywhere). Bucketing with buckets of ``s`` divides those by ``s``: one
Byzantine client spoils a whole bucket (Karimireddy et al. 2022, ICLR, Theorem I).

Every value is capped at 1/2: no rule that treats clients alike can tell a Byzantine majority
from an honest one. Rules whose guarantee is not a share of clients (norm bounding, centred
clipping, SignGuard, FLTrust's trusted root set) have none, and none is drawn.
"""

from __future__ import annotations

import math
from typing import Any

from common.errors import ConfigError
from common.schema import Scenario
from strategies import AGGREGATORS, PRE_AGGREGATORS, build_chain

CLASSICAL = {"fedavg": 0.0, "median": 0.5, "geometric_median": 0.5}
"""Breakdown points of rules that take no Byzantine count (see the module docstring)."""
HALF = 0.5


def _byzantine_stages(scenario: Scenario) -> tuple[bool, list[bool]]:
    """Whether the rule, and each pre-aggregator, declares its bound through ``num_byzantine``."""
    defense = scenario.defense
    rule = "num_byzantine" in AGGREGATORS[defense.aggregator].params.model_fields
    pre = ["num_byzantine" in PRE_AGGREGATORS[p.name].params.model_fields for p in defense.pre]
    return rule, pre


def _chain_admits(scenario: Scenario, f: int, rule: bool, pre: list[bool]) -> bool:
    defense = scenario.defense

    def params(base: dict[str, Any], has: bool) -> dict[str, Any]:
        return {**base, "num_byzantine": f} if has else dict(base)

    try:
        chain = build_chain(
            defense.aggregator,
            params(defense.params, rule),
            [(p.name, params(p.params, has)) for p, has in zip(defense.pre, pre, strict=True)],
        )
    except ConfigError:  # e.g. Multi-Krum's own parameters refuse this f
        return False
    return chain.min_clients() <= scenario.num_sampled


def _bucket_factor(scenario: Scenario) -> int:
    return math.prod(
        int(p.params.get("bucket_size", 2)) for p in scenario.defense.pre if p.name == "bucketing"
    )


def breakdown_point(scenario: Scenario) -> float | None:
    """The chain's breakdown point as a share of the round's ``n`` updates (None: undeclared)."""
    n = scenario.num_sampled
    rule, pre = _byzantine_stages(scenario)
    if rule or any(pre):
        admitted = [f for f in range(n + 1) if _chain_admits(scenario, f, rule, pre)]
        return min(max(admitted, default=0) / n, HALF)
    defense = scenario.defense
    if defense.aggregator == "trimmed_mean":
        point = int(defense.params.get("num_trimmed", 0)) / n
    elif defense.aggregator in CLASSICAL:
        point = CLASSICAL[defense.aggregator]
    else:
        return None
    return min(point / _bucket_factor(scenario), HALF)

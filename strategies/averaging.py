"""Averaging rules: FedAvg and norm-bounded FedAvg."""

from __future__ import annotations

from typing import cast

import numpy as np
from pydantic import Field

from common.errors import AggregationError
from strategies import _math
from strategies.base import Aggregate, Counts, Updates
from strategies.params import WeightingParams
from strategies.registries import AGGREGATORS


def _average_weights(num_examples: Counts, *, weighted: bool) -> _math.F64:
    n = num_examples.shape[0]
    if not weighted:
        return np.full(n, 1.0 / n)
    if np.any(num_examples < 0) or num_examples.sum() <= 0:
        raise AggregationError(
            f"weighted average: example counts must be >= 0 with a positive sum, "
            f"got {num_examples.tolist()}"
        )
    counts = num_examples.astype(np.float64)
    return cast(_math.F64, counts / counts.sum())


@AGGREGATORS.register("fedavg", WeightingParams, kind="average")
def fedavg(updates: Updates, num_examples: Counts, *, weighted: bool = True) -> Aggregate:
    """FedAvg: ``sum_i w_i x_i`` with ``w_i = n_i / sum_j n_j`` (or ``1/n`` if unweighted).

    McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks from Decentralized
    Data". Bound: none (n >= 1); breakdown point 0 (one update can move it arbitrarily far).
    """
    weights = _average_weights(num_examples, weighted=weighted)
    return _math.mix(weights, updates)


class NormBoundingParams(WeightingParams):
    """Norm bounding: a clipping radius plus FedAvg's weighting."""

    max_norm: float = Field(gt=0, allow_inf_nan=False)
    """M in Sun et al. 2019: every update is scaled onto the L2 ball of this radius."""


@AGGREGATORS.register("norm_bounding", NormBoundingParams, kind="average")
def norm_bounding(
    updates: Updates, num_examples: Counts, *, max_norm: float, weighted: bool = True
) -> Aggregate:
    """Norm bounding: ``sum_i w_i x_i min(1, M / ||x_i||_2)``, weights as in FedAvg.

    Sun et al. 2019, "Can You Really Backdoor Federated Learning?". Bound: none (n >= 1); a
    Byzantine update moves the aggregate by at most ``w_i M``.
    """
    weights = _average_weights(num_examples, weighted=weighted)
    factors = _math.clip_factors(_math.squared_norms(updates), max_norm)
    return _math.mix(weights * factors, updates)

"""Coordinate-wise rules: median and trimmed mean (Yin et al. 2018)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, RuleParams, Updates
from strategies.registries import AGGREGATORS


@AGGREGATORS.register("median", RuleParams, kind="coordinate-wise")
def median(updates: Updates, num_examples: Counts) -> Aggregate:
    """Coordinate-wise median: ``out[c] = median_i x_i[c]`` (mean of the two middle values if n
    is even).

    Yin et al. 2018, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates".
    Bound: none (n >= 1); each coordinate stays inside the honest range while f < n/2.
    Example counts are ignored (self-reported).
    """
    del num_examples  # robust rules do not trust self-reported counts
    return _math.like(_math.median_of_sorted(_math.sorted_columns(updates)), updates)


class TrimmedMeanParams(RuleParams):
    """Trimmed mean: how many values to drop from each tail."""

    bound = "n >= 2b+1"
    num_trimmed: int = Field(default=0, ge=0)
    """b = beta * n in Yin et al. 2018: values removed from EACH tail per coordinate (a count,
    not a fraction, so the guarantee "tolerates b Byzantine clients" is exact for every n)."""

    def min_clients(self) -> int:
        return 2 * self.num_trimmed + 1


@AGGREGATORS.register("trimmed_mean", TrimmedMeanParams, kind="coordinate-wise")
def trimmed_mean(updates: Updates, num_examples: Counts, *, num_trimmed: int = 0) -> Aggregate:
    """Coordinate-wise trimmed mean: ``out[c] = 1/(n-2b) sum_{k=b}^{n-b-1} x_(k)[c]``, where
    ``x_(0)[c] <= ... <= x_(n-1)[c]`` are coordinate c's values sorted.

    Yin et al. 2018, "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates"
    (beta-trimmed mean with beta = b/n). Bound: n >= 2b+1; with at most b Byzantine clients
    every coordinate stays inside the honest range. Example counts are ignored.
    """
    del num_examples  # robust rules do not trust self-reported counts
    n = updates.shape[0]
    kept = _math.sorted_columns(updates)[num_trimmed : n - num_trimmed]
    return _math.like(np.mean(kept, axis=0, dtype=np.float64), updates)

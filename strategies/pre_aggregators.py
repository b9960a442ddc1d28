"""Pre-aggregators: map (updates, counts) to new (updates, counts) in front of a rule."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from strategies import _math
from strategies.base import Counts, PreParams, Updates
from strategies.params import ByzantinePreParams
from strategies.registries import PRE_AGGREGATORS


class ClipParams(PreParams):
    """Static norm clipping radius."""

    max_norm: float = Field(gt=0, allow_inf_nan=False)
    """M: every update is scaled onto the L2 ball of this radius."""


@PRE_AGGREGATORS.register("clip", ClipParams)
def clip(updates: Updates, num_examples: Counts, *, max_norm: float) -> tuple[Updates, Counts]:
    """Static norm clipping: ``x_i <- x_i min(1, M / ||x_i||_2)``; counts unchanged.

    As in Sun et al. 2019 ("Can You Really Backdoor Federated Learning?") and DP-FedAvg
    (McMahan et al. 2018). Bound: none (n >= 1).
    """
    factors = _math.clip_factors(_math.squared_norms(updates), max_norm)
    return _math.like(updates * factors[:, None], updates), num_examples.copy()


class NnmParams(ByzantinePreParams):
    """Nearest-neighbour mixing: the number of Byzantine clients f."""

    bound = "n >= 2f+1"

    def min_clients(self, downstream: int) -> int:
        return max(downstream, 2 * self.num_byzantine + 1)


@PRE_AGGREGATORS.register("nnm", NnmParams)
def nnm(
    updates: Updates, num_examples: Counts, *, num_byzantine: int = 0
) -> tuple[Updates, Counts]:
    """Nearest-neighbour mixing: ``y_i = 1/(n-f) sum_{j in N_i} x_j``, ``N_i`` the n - f
    updates nearest to ``x_i`` (including ``x_i`` itself); counts unchanged.

    Allouah et al. 2023, "Fixing by Mixing: A Recipe for Optimal Byzantine ML under
    Heterogeneity" (f = ``num_byzantine``). Bound: n >= 2f+1 (f < n/2).
    """
    n = updates.shape[0]
    keep = n - num_byzantine
    distances = _math.pairwise_squared_distances(updates)
    # Stable argsort so a row's own index wins its zero-distance tie with duplicates.
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :keep]
    mixing = np.zeros((n, n))
    np.put_along_axis(mixing, nearest, 1.0 / keep, axis=1)
    return _math.mix(mixing, updates), num_examples.copy()


class BucketingParams(PreParams):
    """Bucketing: the bucket size s."""

    uses_rng = True
    bound = "ceil(n/s) >= the next stage's bound"
    bucket_size: int = Field(default=2, ge=1)
    """s in Karimireddy et al. 2022: updates averaged per bucket."""

    def min_clients(self, downstream: int) -> int:
        # ceil(n / s) >= k  <=>  n >= (k - 1) s + 1
        return max(1, (max(downstream, 1) - 1) * self.bucket_size + 1)


@PRE_AGGREGATORS.register("bucketing", BucketingParams)
def bucketing(
    updates: Updates, num_examples: Counts, *, bucket_size: int, rng: np.random.Generator
) -> tuple[Updates, Counts]:
    """Bucketing: permute the n updates with ``rng``, split them into ceil(n/s) buckets of s
    consecutive updates (the last may be smaller), and return each bucket's plain mean with
    the bucket's summed example count.

    Karimireddy, He, Jaggi 2022, "Byzantine-Robust Learning on Heterogeneous Datasets via
    Bucketing" (s = ``bucket_size``). Bound: none of its own; the next stage
    sees ceil(n/s) updates of which at most f are contaminated.
    """
    n = updates.shape[0]
    order = rng.permutation(n)
    buckets = np.arange(n) // bucket_size  # bucket of each position in the permuted order
    num_buckets = int(buckets[-1]) + 1
    sizes = np.bincount(buckets, minlength=num_buckets).astype(np.float64)
    mixing = np.zeros((num_buckets, n))
    mixing[buckets, order] = 1.0 / sizes[buckets]
    counts = np.bincount(buckets, weights=num_examples[order], minlength=num_buckets)
    return _math.mix(mixing, updates), counts.astype(np.int64)

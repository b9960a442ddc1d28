"""Filtering rules: drop the updates that outlier filters flag, then average the rest.

DnC (Shejwalkar & Houmansadr 2021) scores updates along their top singular direction on random
coordinate subsets; SignGuard (Xu et al. 2022) filters by norm and by sign statistics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, ValidationInfo, field_validator

from strategies import _math
from strategies.base import Aggregate, Counts, RuleParams, Updates
from strategies.params import ByzantineParams
from strategies.registries import AGGREGATORS

Mask = NDArray[np.bool_]


class DncParams(ByzantineParams):
    """DnC: ``num_byzantine`` is m in Shejwalkar & Houmansadr 2021, plus niters, b and c."""

    uses_rng = True
    bound = "n > c*m, i.e. n >= floor(c*m)+1"
    num_iterations: int = Field(default=5, ge=1)
    """niters in Shejwalkar & Houmansadr 2021: rounds of subsampling and filtering."""
    subsample_dim: int = Field(default=10_000, ge=1)
    """b in Shejwalkar & Houmansadr 2021: coordinates sampled per iteration (all d if b >= d)."""
    filter_fraction: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    """c in Shejwalkar & Houmansadr 2021: each iteration drops the floor(c*m) highest scores."""

    def min_clients(self) -> int:
        return math.floor(self.filter_fraction * self.num_byzantine) + 1


@AGGREGATORS.register("dnc", DncParams, kind="filtering")
def dnc(
    updates: Updates,
    num_examples: Counts,
    *,
    rng: np.random.Generator,
    num_byzantine: int = 0,
    num_iterations: int = 5,
    subsample_dim: int = 10_000,
    filter_fraction: float = 1.0,
) -> Aggregate:
    """DnC (Divide-and-Conquer): niters times, sample b of the d coordinates without replacement
    (``rng``), centre the sampled updates on their mean ``mu``, take the top right singular
    vector ``v`` of the centred ``(n, b)`` matrix, score ``s_i = <x_i[r] - mu, v>^2`` and keep
    the ``n - floor(c m)`` lowest scores; return the unweighted mean of the updates kept in
    every iteration.

    Shejwalkar, Houmansadr 2021, "Manipulating the Byzantine: Optimizing Model Poisoning
    Attacks and Defenses for Federated Learning" (NDSS), Algorithm 2 (m = ``num_byzantine``,
    niters = ``num_iterations``, b = ``subsample_dim``, c = ``filter_fraction``; defaults
    niters = 5, b = 10,000, c = 1 as in Blades). Bound: n > c m (every iteration keeps at least
    one update); filtering only works while the m Byzantine updates are a minority.

    The scores come from the ``n x n`` centred Gram matrix ``G = C C^T`` (``C`` the centred
    sampled updates) instead of an SVD of ``C``: with ``G``'s top eigenpair ``(lambda, u)``,
    ``C v = sqrt(lambda) u``, so ``s_i = lambda u_i^2`` exactly, for one ``O(n^2 b)`` product.
    Ties go to the lower index. If the intersection is empty (with b < d the iterations see
    different coordinates and may drop different updates), the updates kept in the most
    iterations are averaged; that set is the intersection whenever the intersection is not
    empty. The reference implementations (Blades, FLPoison, the SignGuard authors' copy) take
    the mean of the empty set, NaN. With b >= d every iteration would see the same
    coordinates, so one is run. Example counts are ignored.
    """
    del num_examples  # robust rules do not trust self-reported counts
    n, d = updates.shape
    keep = n - math.floor(filter_fraction * num_byzantine)
    times_kept = np.zeros(n, dtype=np.int64)
    for _ in range(num_iterations if subsample_dim < d else 1):
        sampled = _sample_columns(updates, subsample_dim, rng)
        values, vectors = np.linalg.eigh(_math.centred_gram(sampled))
        scores = values[-1] * vectors[:, -1] ** 2  # eigh sorts eigenvalues ascending
        times_kept[np.argsort(scores, kind="stable")[:keep]] += 1
    kept = times_kept == times_kept.max()
    return _math.mix(kept / kept.sum(), updates)


def _sample_columns(updates: Updates, count: int, rng: np.random.Generator) -> Updates:
    """``count`` of the d columns drawn uniformly without replacement with ``rng``; all of them,
    without a draw, if ``count >= d``."""
    d = updates.shape[1]
    if count >= d:
        return updates
    # Sorted columns read memory in order; neither rule depends on the column order.
    return updates[:, np.sort(rng.choice(d, size=count, replace=False))]


class SignGuardParams(RuleParams):
    """SignGuard: the norm band [L, R] around the median norm and the sampled fraction."""

    uses_rng = True
    bound = "none; the largest sign cluster must be honest (honest majority)"
    lower_bound: float = Field(default=0.1, ge=0, allow_inf_nan=False)
    """L in Xu et al. 2022: keep updates with ||x_i|| / M > L (M the median norm)."""
    upper_bound: float = Field(default=3.0, gt=0, allow_inf_nan=False)
    """R in Xu et al. 2022: keep updates with ||x_i|| / M < R; must exceed L."""
    selection_fraction: float = Field(default=0.1, gt=0, le=1, allow_inf_nan=False)
    """Fraction of the d coordinates whose signs are counted (10 % in Xu et al. 2022)."""

    @field_validator("upper_bound")
    @classmethod
    def _above_lower(cls, value: float, info: ValidationInfo) -> float:
        lower = info.data.get("lower_bound")
        if lower is not None and value <= lower:
            raise ValueError(f"upper_bound must exceed lower_bound ({lower})")
        return value


@AGGREGATORS.register("signguard", SignGuardParams, kind="filtering")
def signguard(
    updates: Updates,
    num_examples: Counts,
    *,
    rng: np.random.Generator,
    lower_bound: float = 0.1,
    upper_bound: float = 3.0,
    selection_fraction: float = 0.1,
) -> Aggregate:
    """SignGuard: with ``M = median_i ||x_i||``, ``S1 = {i : L M < ||x_i|| < R M}``; on a random
    subset of ``k = max(1, floor(q d))`` coordinates (``rng``), each update's sign statistics
    (its fractions of positive, zero and negative coordinates, each divided by its maximum over
    the clients) are clustered by MeanShift and ``S2`` is the largest cluster; the aggregate is
    ``1/|S| sum_{i in S} x_i min(1, M / ||x_i||)`` over ``S = S1 & S2``.

    Xu, Huang, Song, Lan 2022, "SignGuard: Byzantine-robust Federated Learning through
    Collaborative Malicious Gradient Filtering" (ICDCS; arXiv 2109.05872): plain SignGuard
    (norm and sign filters, no similarity feature) with the authors' code's settings: L = 0.1,
    R = 3, q = 0.1, flat-kernel MeanShift with bin seeding, ``cluster_all=False`` (points
    farther than the bandwidth from every mode join no cluster) and the bandwidth of
    ``sklearn.cluster.estimate_bandwidth(quantile=0.5)``, i.e. the mean over clients of the
    distance to the floor(n/2)-th nearest statistics, the client itself counted first. Bound:
    none on n (n >= 1); the largest sign cluster must be honest (an honest majority).

    Where it differs from the authors' code: the coordinates are a uniform random subset (a
    random selection, as the paper describes; the code takes a contiguous window at a random
    offset); the bandwidth uses all n clients (the code picks a random 50 when n > 50, which
    makes it depend on the client order); bin seeds are computed in float64 (sklearn rounds the
    bin indices through float32, which leaves every seed empty and raises for bandwidths below
    about 6e-8); a zero bandwidth (n <= 3, or enough identical statistics) groups exactly equal
    statistics, where sklearn refuses a zero bandwidth; a statistic whose maximum is 0 stays 0
    (the code adds 1e-8 to the divisor); M is numpy's median in both the filter and the clip
    (the code clips at torch's lower median for even n); an empty S gives a zero aggregate, so
    the global model is kept (the code returns NaN). With ``M = 0`` nothing passes the norm
    filter. Example counts are ignored.
    """
    del num_examples  # robust rules do not trust self-reported counts
    d = updates.shape[1]
    squared = _math.squared_norms(updates)
    norms = np.sqrt(squared)
    median = float(np.median(norms))
    in_band = (norms > lower_bound * median) & (norms < upper_bound * median)
    count = min(d, max(1, math.floor(selection_fraction * d)))
    sampled = _sample_columns(updates, count, rng)
    fractions = np.stack(
        [
            np.count_nonzero(sampled > 0, axis=1),
            np.count_nonzero(sampled == 0, axis=1),
            np.count_nonzero(sampled < 0, axis=1),
        ],
        axis=1,
    ) / float(count)
    peak = fractions.max(axis=0)
    features = np.divide(fractions, peak, out=np.zeros_like(fractions), where=peak > 0)
    selected = in_band & largest_sign_cluster(features)
    if not selected.any():
        return np.zeros(d, dtype=updates.dtype)
    weights = np.where(selected, _math.clip_factors(squared, median), 0.0) / selected.sum()
    return _math.mix(weights, updates)


def mean_shift_bandwidth(features: _math.F64) -> float:
    """``sklearn.cluster.estimate_bandwidth(features, quantile=0.5)`` on all n rows: the mean
    over rows of the distance to the ``max(1, floor(n/2))``-th nearest row, the row itself
    counted first (so 0 for n <= 3)."""
    distances = np.sqrt(((features[:, None, :] - features[None, :, :]) ** 2).sum(axis=-1))
    k = max(1, features.shape[0] // 2)
    return float(np.sort(distances, axis=1)[:, k - 1].mean())


def largest_sign_cluster(features: _math.F64) -> Mask:
    """Members of the largest MeanShift cluster of the ``(n, 3)`` sign statistics (see
    :func:`signguard`); ties go to the cluster MeanShift lists first (more points within the
    bandwidth of its mode, then the lexicographically larger mode)."""
    bandwidth = mean_shift_bandwidth(features)
    if bandwidth == 0.0:
        # The flat kernel of radius 0 holds only exact copies: each distinct statistic is its
        # own mode. np.unique lists them in increasing lexicographic order, so the last of the
        # most frequent is the one MeanShift would list first.
        _, group, sizes = np.unique(features, axis=0, return_inverse=True, return_counts=True)
        best = len(sizes) - 1 - int(np.argmax(sizes[::-1]))
        return np.asarray(group.reshape(-1) == best)
    from sklearn.cluster import MeanShift  # imported on first use: sklearn takes ~1 s to load

    # sklearn's bin seeding (one seed per occupied grid cell of side the bandwidth, or the
    # points themselves when no two share a cell), kept in float64.
    cells = np.unique(np.round(features / bandwidth), axis=0)
    seeds = features if len(cells) == len(features) else cells * bandwidth
    clustering: Any = MeanShift(bandwidth=bandwidth, seeds=seeds, cluster_all=False)
    labels: NDArray[np.int64] = clustering.fit(features).labels_
    # Label -1 (no cluster) is not counted; if every point has it, minlength=1 makes the
    # "largest cluster" label 0, which no point carries, so the mask is empty.
    sizes = np.bincount(labels[labels >= 0], minlength=1)
    return np.asarray(labels == int(np.argmax(sizes)))

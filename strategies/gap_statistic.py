"""Exact k-means on a line and the gap statistic (Tibshirani, Walther, Hastie 2001), which
FLDetector runs on its suspicion scores to decide whether there are attackers at all."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from strategies import _math


def within_cluster_sums(points: _math.F64, max_clusters: int) -> _math.F64:
    """``W_k`` for k = 1 .. ``max_clusters``: the least within-cluster sum of squares of any
    partition of the 1-D ``points`` into k clusters (exact, by dynamic programming over the
    sorted points, since an optimal 1-D cluster is a run of consecutive sorted points).

    >>> within_cluster_sums(np.array([0.0, 2.0, 4.0]), 3)  # mean 2; {0, 2} | {4}; singletons
    array([8., 2., 0.])
    """
    x = np.sort(points)
    n = len(x)
    sums = np.concatenate(([0.0], np.cumsum(x)))
    squares = np.concatenate(([0.0], np.cumsum(x * x)))
    start = np.arange(n + 1)[:, None]
    end = np.arange(n + 1)[None, :]
    count = np.maximum(end - start, 1)
    segment = sums[None, :] - sums[:, None]
    # cost[i, j]: the sum of squares of x[i:j] around its mean; inf where the run is empty.
    cost = np.where(end > start, squares[None, :] - squares[:, None] - segment**2 / count, np.inf)
    cost = np.maximum(cost, 0.0)  # rounding can leave -1e-17 on a run of equal points
    best = cost[0]  # best[j]: the optimum over x[:j] with the current number of clusters
    result = [best[n]]
    for _ in range(1, max_clusters):
        best = np.min(best[:, None] + cost, axis=0)
        result.append(best[n])
    return np.array(result)


def two_means_upper(points: _math.F64) -> NDArray[np.bool_]:
    """The points in the upper cluster of the optimal 1-D 2-means split (exact): the split
    point of the sorted points with the least within-cluster sum of squares. Equal points
    fall on the same side, so the answer does not depend on their order."""
    x = np.sort(points)
    costs = [np.var(x[:cut]) * cut + np.var(x[cut:]) * (len(x) - cut) for cut in range(1, len(x))]
    cut = 1 + int(np.argmin(costs))
    return np.asarray(points > x[cut - 1])


def number_of_clusters(
    points: _math.F64, *, rng: np.random.Generator, num_references: int, max_clusters: int
) -> int:
    r"""The gap statistic's number of clusters of the 1-D ``points`` (min-max normalised to
    [0, 1], as FLDetector does), with ``num_references`` uniform reference sets from ``rng``.

    .. math::

        \mathrm{Gap}(k) = \log \overline{W^*_k} - \log W_k, \quad
        s_k = \sqrt{1 + 1/B}\ \operatorname{sd}(\log W^*_k), \quad
        \hat k = \min\{k : \mathrm{Gap}(k) \ge \mathrm{Gap}(k+1) - s_{k+1}\}

    for k = 1 .. K - 1 (:math:`\hat k = K` if none), K = min(``max_clusters``, the number of
    distinct points, n - 1). A partition into as many clusters as distinct points has
    :math:`W_K = 0` and an infinite gap, which is never the minimum's witness, so K is chosen
    only when no smaller k fits. Equal points (or n <= 2) give 1.

    >>> rng = np.random.default_rng(0)
    >>> number_of_clusters(np.array([0.1, 0.1, 0.1, 0.9]), rng=rng, num_references=10,
    ...                    max_clusters=7)
    2
    """
    n = len(points)
    low, high = float(points.min()), float(points.max())
    distinct = len(np.unique(points))
    top = min(max_clusters, distinct, n - 1)
    if top < 2 or high == low:
        return 1
    data = (points - low) / (high - low)
    with np.errstate(divide="ignore"):
        log_w = np.log(within_cluster_sums(data, top))
        references = np.array(
            [
                np.log(within_cluster_sums(rng.uniform(0.0, 1.0, n), top))
                for _ in range(num_references)
            ]
        )
    gap = np.log(np.mean(np.exp(references), axis=0)) - log_w
    spread = np.sqrt(1.0 + 1.0 / num_references) * np.std(references, axis=0)
    for k in range(1, top):
        if gap[k - 1] >= gap[k] - spread[k]:
            return k
    return top

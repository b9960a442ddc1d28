"""k-means (k-means++ seeding, Lloyd's iterations) on a few low-dimensional points, and the gap
statistic that RFLBAT runs with it to choose the number of clusters."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from strategies import _math

_MAX_ITERATIONS = 300  # scikit-learn's KMeans default; Lloyd's converges far sooner on n <= 100


class Clustering(NamedTuple):
    """The labels ``(m,)`` of the points, the ``(k, p)`` centres, and the summed Euclidean
    distances of the points to their centres."""

    labels: NDArray[np.int64]
    centres: _math.F64
    dispersion: float


def plus_plus(points: _math.F64, k: int, rng: np.random.Generator) -> _math.F64:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): the first centre uniform, each next one
    a point drawn with probability proportional to its squared distance to the nearest centre
    (uniform when every point sits on a centre)."""
    m = points.shape[0]
    centres = np.empty((k, points.shape[1]))
    centres[0] = points[rng.integers(m)]
    nearest = ((points - centres[0]) ** 2).sum(axis=1)
    for j in range(1, k):
        total = nearest.sum()
        if total > 0:  # inverse CDF: a point at distance 0 has an empty interval
            at = np.searchsorted(np.cumsum(nearest), rng.random() * total, side="right")
            centres[j] = points[min(int(at), m - 1)]
        else:
            centres[j] = points[rng.integers(m)]
        nearest = np.minimum(nearest, ((points - centres[j]) ** 2).sum(axis=1))
    return centres


def lloyd(points: _math.F64, centres: _math.F64) -> Clustering:
    """Lloyd's iterations from ``centres`` until the labels stop changing; an emptied cluster
    keeps its centre."""
    labels = np.full(points.shape[0], -1, dtype=np.int64)
    for _ in range(_MAX_ITERATIONS):
        squared = ((points[:, None, :] - centres[None]) ** 2).sum(axis=2)
        new = np.argmin(squared, axis=1).astype(np.int64)
        if np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=len(centres)).astype(np.float64)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, points)
        filled = counts > 0
        centres = np.where(filled[:, None], sums / np.maximum(counts, 1.0)[:, None], centres)
    distances = np.sqrt(((points - centres[labels]) ** 2).sum(axis=1))
    return Clustering(labels, centres, float(distances.sum()))


def kmeans(points: _math.F64, k: int, *, rng: np.random.Generator, restarts: int) -> Clustering:
    """The best of ``restarts`` k-means++ / Lloyd runs by within-cluster sum of squares
    (scikit-learn's ``n_init``)."""
    best: Clustering | None = None
    best_inertia = np.inf
    for _ in range(restarts):
        run = lloyd(points, plus_plus(points, k, rng))
        inertia = float(((points - run.centres[run.labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = run, inertia
    assert best is not None  # restarts >= 1
    return best


def gap_clusters(
    points: _math.F64,
    *,
    rng: np.random.Generator,
    num_references: int,
    max_clusters: int,
    restarts: int,
) -> int:
    r"""The number of clusters of ``points`` ``(m, p)`` by the gap statistic, as RFLBAT's
    implementations compute it (3DFed's and BackFed's ``gap_statistics``): each column min-max
    normalised to [0, 1], dispersion = summed Euclidean distances to the k-means centres,
    ``num_references`` uniform [0, 1) reference sets of the same size from ``rng``.

    .. math::

        \mathrm{Gap}(k) = \overline{\log W^*_k} - \log W_k, \quad
        s_k = \sqrt{1 + 1/B}\ \operatorname{sd}(\log W^*_k), \quad
        \hat k = \min\{k : \mathrm{Gap}(k) \ge \mathrm{Gap}(k+1) - s_{k+1}\}

    for k = 1 .. K - 1 (:math:`\hat k = K` if none), K = min(``max_clusters``, the number of
    distinct points, m - 1); 1 when K < 2.
    """
    m = points.shape[0]
    top = min(max_clusters, len(np.unique(points, axis=0)), m - 1)
    if top < 2:
        return 1
    low, high = points.min(axis=0), points.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    data = np.where(high > low, (points - low) / span, 0.0)
    references = [rng.uniform(0.0, 1.0, size=points.shape) for _ in range(num_references)]
    with np.errstate(divide="ignore"):  # W_k = 0 (k distinct points) gives an infinite gap
        log_w = np.log(
            [kmeans(data, k, rng=rng, restarts=restarts).dispersion for k in range(1, top + 1)]
        )
        log_ref = np.log(
            [
                [kmeans(r, k, rng=rng, restarts=restarts).dispersion for r in references]
                for k in range(1, top + 1)
            ]
        )
    gap = log_ref.mean(axis=1) - log_w
    spread = np.sqrt(1.0 + 1.0 / num_references) * log_ref.std(axis=1)
    for k in range(1, top):
        if gap[k - 1] >= gap[k] - spread[k]:
            return k
    return top

"""Vectorised maths shared by the aggregation rules (private: the rules are the public API).

Everything here works on a stacked ``(n, d)`` array of update deltas and never writes to it.
Reductions over the ``d`` axis accumulate in float64 but read the input in column blocks, so a
float32 ``(100, 10**6)`` input never gets a full float64 copy (that copy alone costs more than
the Gram product, mostly in page faults).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

Matrix = NDArray[np.floating[Any]]
"""``(n, d)`` stacked updates, float32 or float64."""
F64 = NDArray[np.float64]

# About 64 MiB of float64 per block: large enough for BLAS, small enough to stay in memory.
_BLOCK_ELEMENTS = 1 << 23


def _column_blocks(n: int, d: int) -> Iterator[slice]:
    width = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, d, width):
        yield slice(start, min(d, start + width))


def like(values: NDArray[np.floating[Any]], updates: Matrix) -> Matrix:
    """``values`` cast to the dtype of ``updates``: every rule returns its input's dtype."""
    return cast(Matrix, values.astype(updates.dtype))


def mix(weights: F64, updates: Matrix) -> F64:
    """Return ``weights @ updates`` in float64: ``(m, n) @ (n, d) -> (m, d)``.

    Weighted means, nearest-neighbour mixing, bucket means, norm-bounded averages and the
    Weiszfeld / centred-clipping steps are all one mixing matrix applied to the rows.
    """
    n, d = updates.shape
    out = np.empty((weights.shape[0], d), dtype=np.float64)
    for cols in _column_blocks(n, d):
        out[:, cols] = weights @ updates[:, cols].astype(np.float64)
    return out


def squared_distances_to(updates: Matrix, point: F64) -> F64:
    """``||x_i - point||^2`` for every row ``i``, in float64: ``(n,)``."""
    n, d = updates.shape
    total = np.zeros(n, dtype=np.float64)
    buffer = np.empty((n, next(_column_blocks(n, d)).stop), dtype=np.float64)
    for cols in _column_blocks(n, d):
        diff = buffer[:, : cols.stop - cols.start]
        np.subtract(updates[:, cols], point[cols], out=diff)  # casts to float64 on the fly
        total += np.einsum("ij,ij->i", diff, diff)
    return total


def squared_norms(updates: Matrix) -> F64:
    """``||x_i||^2`` for every row, in float64: ``(n,)``."""
    return squared_distances_to(updates, np.zeros(updates.shape[1], dtype=np.float64))


def clip_factors(squared_norms_: F64, max_norm: float) -> F64:
    """``min(1, M / ||x_i||)``: the factor that scales row ``i`` onto the ball of radius M."""
    norms = np.sqrt(squared_norms_)
    # A zero row needs no clipping; dividing would give inf, so it keeps factor 1.
    return np.minimum(1.0, max_norm / np.maximum(norms, np.finfo(np.float64).tiny))


def pairwise_squared_distances(updates: Matrix) -> F64:
    """``D[i, j] = ||x_i - x_j||^2`` from ONE Gram product on centred float64 data: ``(n, n)``.

    ``D = diag(G) 1^T + 1 diag(G)^T - 2 G`` with ``G = (X - c) (X - c)^T``. Centring removes
    the common component of the rows (the global model drift), which is what makes the
    expansion lose digits when rows are close to each other but far from the origin. The
    centre ``c`` is the first row rather than the mean: any point of the cloud removes the
    common component equally well (distances are translation invariant), and the mean would
    cost one more pass over ``X`` (a fifth of the total at n = 50, d = 1e6).
    """
    n, d = updates.shape
    centre = updates[0].astype(np.float64)
    gram = np.zeros((n, n), dtype=np.float64)
    buffer = np.empty((n, next(_column_blocks(n, d)).stop), dtype=np.float64)
    for cols in _column_blocks(n, d):
        block = buffer[:, : cols.stop - cols.start]
        np.subtract(updates[:, cols], centre[cols], out=block)  # casts to float64 on the fly
        gram += block @ block.T
    sq = np.diag(gram)
    dist = sq[:, None] + sq[None, :] - 2.0 * gram
    np.maximum(dist, 0.0, out=dist)  # rounding can leave tiny negatives
    np.fill_diagonal(dist, 0.0)
    return cast(F64, dist)


def krum_scores(distances: F64, num_byzantine: int, active: NDArray[np.bool_]) -> F64:
    """Krum score of every active row; ``inf`` for rows outside ``active``.

    ``score(i) = sum of D[i, j] over the k nearest other active rows j``, with
    ``k = n' - f - 2`` (Blanchard et al. 2017), ``n'`` the number of active rows. Bulyan's
    repeated Krum runs this on a shrinking ``active`` mask, reusing one distance matrix; when
    ``n' - f - 2 < 1`` there (the last picks) ``k`` is clamped to ``[1, n' - 1]``, as Flower does.
    """
    count = int(active.sum())
    k = min(max(1, count - num_byzantine - 2), count - 1)
    masked = np.where(active[:, None] & active[None, :], distances, np.inf)
    np.fill_diagonal(masked, np.inf)
    scores = np.full(distances.shape[0], np.inf)
    if k == 0:  # a single active row is trivially the best
        scores[active] = 0.0
        return scores
    nearest = np.partition(masked[active], k - 1, axis=1)[:, :k]
    scores[active] = nearest.sum(axis=1)
    return scores


def sorted_columns(updates: Matrix) -> Matrix:
    """Each coordinate sorted over the clients: ``(n, d)`` (a new array, input dtype).

    One vectorised sort serves median, trimmed mean and Bulyan's second stage: numpy's SIMD
    sort is about 3x faster than ``np.partition`` / ``np.median`` along axis 0 at d = 1e6.
    """
    return np.sort(updates, axis=0)


def median_of_sorted(ordered: Matrix) -> F64:
    """Coordinate-wise median of column-sorted rows, in float64: ``(d,)``."""
    n = ordered.shape[0]
    upper = ordered[n // 2].astype(np.float64)
    if n % 2:
        return cast(F64, upper)
    return cast(F64, 0.5 * (ordered[n // 2 - 1].astype(np.float64) + upper))


def window_mean(ordered: Matrix, start: NDArray[np.intp], length: int) -> F64:
    """Per coordinate ``c``, the float64 mean of ``ordered[start[c] : start[c] + length, c]``."""
    rank = np.arange(ordered.shape[0])[:, None]
    inside = (rank >= start[None, :]) & (rank < start[None, :] + length)
    total = np.sum(ordered, axis=0, where=inside, dtype=np.float64)
    return np.asarray(total / length, dtype=np.float64)


def closest_to_median_mean(ordered: Matrix, count: int) -> F64:
    """Per coordinate, the mean of the ``count`` values closest to the median (Bulyan, stage 2).

    In sorted order the ``count`` values nearest the median ``m`` are a contiguous window
    ``[j, j + count)``; it is the window whose farthest member is nearest:
    ``j* = argmin_j max(|s_j - m|, |s_{j+count-1} - m|)``, ``j`` in ``[0, n - count]``. This
    costs ``O((n - count + 1) d)`` instead of an argpartition of ``|x - m|`` over ``(n, d)``.
    Ties (two windows equally far) take the lower window.
    """
    n = ordered.shape[0]
    centre = median_of_sorted(ordered)
    best = np.full(ordered.shape[1], np.inf)
    start = np.zeros(ordered.shape[1], dtype=np.intp)
    # A loop over the n - count + 1 candidate windows, each step vectorised over d: np.argmin
    # over a stacked (windows, d) array along axis 0 is strided and three times slower.
    for j in range(n - count + 1):
        reach = np.maximum(np.abs(ordered[j] - centre), np.abs(ordered[j + count - 1] - centre))
        np.copyto(start, j, where=reach < best)
        np.minimum(best, reach, out=best)
    return window_mean(ordered, start, count)

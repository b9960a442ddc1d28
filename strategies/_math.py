"""Vectorised maths shared by the aggregation rules (private: the rules are the public API).

Everything here works on a stacked ``(n, d)`` array of update deltas and never writes to it.
Reductions over the ``d`` axis (norms, distances, inner products, Gram products) accumulate in
float64 but read the input row by row (one reused row buffer) or in column blocks (Gram
products), so a float32 ``(100, 10**6)`` input never gets a full float64 copy (that copy alone
costs more than the Gram product, mostly in page faults). Mixtures of rows (:func:`mix`) and
row scalings (:func:`scale_rows`) stay in the input's precision: see there why and how
accurate they are.
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
# Row reductions cast 512 KiB of float64 at a time: the buffer stays in L2, the row in L3.
_ROW_CHUNK = 1 << 16
# Columns per block of the coordinate-wise sorts: (1024, n) float32 is 200-400 KiB at n = 50-100.
_SORT_BLOCK = 1 << 10


def _column_blocks(n: int, d: int) -> Iterator[slice]:
    width = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, d, width):
        yield slice(start, min(d, start + width))


def like(values: NDArray[np.floating[Any]], updates: Matrix) -> Matrix:
    """``values`` cast to the dtype of ``updates``: every rule returns its input's dtype."""
    return cast(Matrix, values.astype(updates.dtype))


def mix(weights: F64, updates: Matrix) -> Matrix:
    """Return ``weights @ updates`` in the precision of ``updates``: ``(m, n) @ (n, d) -> (m, d)``
    (or ``(n,) @ (n, d) -> (d,)`` for one mixture).

    Weighted means, nearest-neighbour mixing, bucket means, norm-bounded averages and the
    Weiszfeld / centred-clipping steps are all one mixing matrix applied to the rows. It is
    one BLAS product over the input as it is, never a float64 copy: a mixture is a single
    pass over ``X``, so a copy would double its cost. Float32 rows thus accumulate in float32,
    as Flower's own ``aggregate`` does; the standard dot-product bound
    ``|err_c| <= (n + 1) eps_32 sum_i |w_i x_ic|`` holds and is checked by test. Distances and
    norms, where cancellation matters, keep float64 accumulation below.
    """
    return weights.astype(updates.dtype) @ updates


def _row_chunks(d: int) -> Iterator[slice]:
    width = min(d, _ROW_CHUNK)
    for start in range(0, d, width):
        yield slice(start, min(d, start + width))


def _squared_norm(
    row: NDArray[np.floating[Any]], buffer: F64, point: NDArray[np.floating[Any]] | None = None
) -> float:
    """``||row - point||^2`` (``||row||^2`` without ``point``) in float64, chunk by chunk
    through ``buffer``: each chunk is cast (or subtracted) into it, then one BLAS ``ddot``."""
    total = 0.0
    for cols in _row_chunks(row.shape[0]):
        diff = buffer[: cols.stop - cols.start]
        if point is None:
            np.copyto(diff, row[cols])
        else:
            np.subtract(row[cols], point[cols], out=diff)  # casts to float64 on the fly
        total += float(diff @ diff)
    return total


def squared_distances_to(updates: Matrix, point: NDArray[np.floating[Any]] | None = None) -> F64:
    """``||x_i - point||^2`` for every row ``i`` (``||x_i||^2`` without ``point``), in float64:
    ``(n,)``.

    Row by row, in chunks of 512 KiB of float64 that stay in cache: each chunk is cast, or
    subtracted from ``point``, into one reused float64 buffer, whose squared norm is one BLAS
    ``ddot``. Exact to float64 rounding (float32 accumulation, ``sdot``, loses about 1e-5
    relative at d = 1e6), at about twice ``sdot``'s time, and no ``(n, d)`` temporary.
    """
    n, d = updates.shape
    buffer = np.empty(min(d, _ROW_CHUNK), dtype=np.float64)
    return np.array([_squared_norm(updates[i], buffer, point) for i in range(n)])


def inner_products(updates: Matrix, vector: NDArray[np.floating[Any]]) -> F64:
    """``<x_i, v>`` for every row ``i``, accumulated in float64: ``(n,)`` (row by row, as
    :func:`squared_distances_to`)."""
    n, d = updates.shape
    total = np.zeros(n, dtype=np.float64)
    row = np.empty(min(d, _ROW_CHUNK), dtype=np.float64)
    other = np.empty_like(row)
    for cols in _row_chunks(d):
        width = cols.stop - cols.start
        np.copyto(other[:width], vector[cols])
        for i in range(n):
            np.copyto(row[:width], updates[i, cols])
            total[i] += row[:width] @ other[:width]
    return total


def squared_norms(updates: Matrix) -> F64:
    """``||x_i||^2`` for every row, in float64: ``(n,)``."""
    return squared_distances_to(updates)


def scale_rows(updates: Matrix, factors: F64) -> Matrix:
    """``diag(factors) X`` in the dtype of ``X``: ``(n, d)``, one new array, no float64 copy.

    The float64 factors are rounded to the input's dtype first, then each product is rounded
    once: for float32 input every value is within ``2 eps_32 |c_i x_ic|`` of the exact product
    (a float64 ``X * factors[:, None]`` would build an ``(n, d)`` float64 array, twice the
    input's size, only to round it back).
    """
    return cast(Matrix, np.multiply(updates, factors.astype(updates.dtype)[:, None]))


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
    gram = centred_gram(updates, on_mean=False)
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


def sample_columns(updates: Matrix, count: int, rng: np.random.Generator) -> Matrix:
    """``count`` of the d columns drawn uniformly without replacement with ``rng``; all of them,
    without a draw, if ``count >= d``. The draw depends on d only, never on the row order."""
    d = updates.shape[1]
    if count >= d:
        return updates
    # Sorted columns read memory in order; no rule depends on the column order.
    return updates[:, np.sort(rng.choice(d, size=count, replace=False))]


def sorted_column_blocks(updates: Matrix) -> Iterator[tuple[slice, Matrix]]:
    """``(cols, block)`` for consecutive column blocks: ``block[j]`` is column ``cols[j]`` of
    ``X``, its n values sorted: ``(w, n)``, input dtype, overwritten by the next block.

    ``np.sort(X, axis=0)`` copies every column of n values out of rows d apart and back (a
    cache and TLB miss per value) and builds an ``(n, d)`` copy. Here a block of 1024 columns
    is transposed into one reused buffer that stays in L2, and its rows sorted where they lie
    (numpy's SIMD sort along the last axis): about twice as fast at n = 50-100, and the only
    memory is the buffer. NaN sorts last, as with ``np.sort``.
    """
    n, d = updates.shape
    buffer = np.empty((min(d, _SORT_BLOCK), n), dtype=updates.dtype)
    for start in range(0, d, _SORT_BLOCK):
        cols = slice(start, min(d, start + _SORT_BLOCK))
        block = buffer[: cols.stop - cols.start]
        np.copyto(block, updates[:, cols].T)
        block.sort(axis=1)
        yield cols, block


def median_of_sorted(ordered: Matrix) -> F64:
    """Coordinate-wise median of column-sorted rows, in float64: ``(d,)``."""
    n = ordered.shape[0]
    upper = ordered[n // 2].astype(np.float64)
    if n % 2:
        return cast(F64, upper)
    return cast(F64, 0.5 * (ordered[n // 2 - 1].astype(np.float64) + upper))


def closest_to_median_mean(ordered: Matrix, count: int) -> F64:
    """Per coordinate, the mean of the ``count`` values closest to the median (Bulyan, stage 2).

    In sorted order ``s_0 <= ... <= s_{n-1}`` the ``count`` values nearest the median ``m`` are
    a contiguous window ``[j, j + count)``: the one whose farthest member is nearest,
    ``j* = argmin_j max(m - s_j, s_{j+count-1} - m)`` over ``j`` in ``[0, n - count]``. That
    max equals ``max(|s_j - m|, |s_{j+count-1} - m|)`` without the absolute values: if both
    ends lie left of ``m`` the left term is the larger and non-negative, if both lie right the
    right one, and if they straddle ``m`` both are non-negative. The window sums slide along
    (``S_j = S_{j-1} - s_{j-1} + s_{j+count-1}``, float64), so the whole stage is
    ``O((n - count + 1) d)`` plus one sum of ``count`` rows, never an ``(n, d)`` mask.
    Ties (two windows equally far) take the lower window.
    """
    n, d = ordered.shape
    centre = median_of_sorted(ordered)
    window: F64 = np.sum(ordered[:count], axis=0, dtype=np.float64)
    best_sum = window.copy()
    best = np.subtract(ordered[count - 1], centre)
    np.maximum(best, np.subtract(centre, ordered[0]), out=best)
    reach = np.empty(d, dtype=np.float64)
    scratch = np.empty(d, dtype=np.float64)
    better = np.empty(d, dtype=bool)
    # A loop over the n - count windows after the first, each step vectorised over d with
    # preallocated buffers: np.argmin over a stacked (windows, d) array along axis 0 is
    # strided and three times slower.
    for j in range(1, n - count + 1):
        window += ordered[j + count - 1]
        window -= ordered[j - 1]
        np.subtract(ordered[j + count - 1], centre, out=reach)
        np.maximum(reach, np.subtract(centre, ordered[j], out=scratch), out=reach)
        np.less(reach, best, out=better)
        np.copyto(best_sum, window, where=better)
        np.minimum(best, reach, out=best)
    best_sum /= count
    return best_sum


def centred_gram(updates: Matrix, *, on_mean: bool = True) -> F64:
    """``G = (X - c)(X - c)^T`` in float64: ``(n, n)``, ``c`` the mean row (``on_mean``) or the
    first row.

    ``X`` is read once in column blocks, without a float64 copy; with ``on_mean`` every block is
    centred on its own column means. DnC's top right singular vector of ``X - mu`` is the top
    eigenvector of the ``d x d`` matrix ``(X - mu)^T (X - mu)``; this ``n x n`` Gram matrix has
    the same top eigenvalue and gives the projections directly (see ``filtering.dnc``).
    Distances need only some point of the cloud as centre (:func:`pairwise_squared_distances`),
    and the first row saves the pass that computes the means.
    """
    n, d = updates.shape
    first = None if on_mean else updates[0].astype(np.float64)
    gram = np.zeros((n, n), dtype=np.float64)
    buffer = np.empty((n, next(_column_blocks(n, d)).stop), dtype=np.float64)
    for cols in _column_blocks(n, d):
        block = buffer[:, : cols.stop - cols.start]
        if first is None:
            np.copyto(block, updates[:, cols])  # casts to float64 on the fly
            block -= block.mean(axis=0)
        else:
            np.subtract(updates[:, cols], first[cols], out=block)
        gram += block @ block.T
    return gram

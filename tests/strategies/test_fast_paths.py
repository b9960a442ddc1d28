"""The fast paths of issue 13.6 give the answers of the implementations they replaced.

Each test pins a rewritten function to the previous implementation (transcribed here) or to a
float64 reference, within a bound stated from the rounding involved; a rewrite that changed
the maths, not only the rounding, breaks it. No timings here (benchmarks/aggregators.py).
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import pytest
from aggregation_cases import honest_updates
from numpy.typing import NDArray

from strategies import _math
from strategies.coordinatewise import median, trimmed_mean
from strategies.iterative import geometric_median
from strategies.pre_aggregators import bucketing, clip

EPS32 = float(np.finfo(np.float32).eps)
F64 = NDArray[np.float64]


@pytest.mark.parametrize("chunk", [5, 1 << 16])
def test_row_reductions_are_float64_exact(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # A chunk of 5 columns splits every row of 23 (rows wider than 2**16 are split the same way).
    monkeypatch.setattr(_math, "_ROW_CHUNK", chunk)
    x = (honest_updates(9, 23, seed=1) + 3.0).astype(np.float32)  # far from 0: no cancellation
    exact = x.astype(np.float64)
    point = honest_updates(1, 23, seed=2)[0]
    np.testing.assert_allclose(_math.squared_norms(x), (exact**2).sum(axis=1), rtol=1e-13)
    np.testing.assert_allclose(
        _math.squared_distances_to(x, point), ((exact - point) ** 2).sum(axis=1), rtol=1e-13
    )
    np.testing.assert_allclose(_math.inner_products(x, point), exact @ point, rtol=1e-13)


def test_clip_scales_in_the_input_dtype_without_a_float64_copy() -> None:
    x = honest_updates(20, 50_000, seed=3).astype(np.float32)  # norms about 11, M = 2 clips all
    tracemalloc.start()
    try:
        out = clip(x, max_norm=2.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The output (x.nbytes) and one float64 row buffer; a float64 product would add 2 x.nbytes.
    assert peak < 1.25 * x.nbytes
    exact = x.astype(np.float64)
    factors = np.minimum(1.0, 2.0 / np.linalg.norm(exact, axis=1))
    expected = exact * factors[:, None]
    assert out.dtype == np.float32
    # factor rounded to float32, then the product rounded: two roundings
    assert np.all(np.abs(out - expected) <= 2 * EPS32 * np.abs(expected))
    np.testing.assert_allclose(np.linalg.norm(out.astype(np.float64), axis=1), 2.0, rtol=1e-6)


def previous_bucketing(
    updates: NDArray[Any], num_examples: NDArray[np.int64], bucket_size: int, seed: int
) -> tuple[NDArray[Any], NDArray[np.int64]]:
    """The dense mixing-matrix implementation this replaced (bucket means as one product)."""
    n = updates.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    buckets = np.arange(n) // bucket_size
    num_buckets = int(buckets[-1]) + 1
    sizes = np.bincount(buckets, minlength=num_buckets).astype(np.float64)
    mixing = np.zeros((num_buckets, n))
    mixing[buckets, order] = 1.0 / sizes[buckets]
    counts = np.bincount(buckets, weights=num_examples[order], minlength=num_buckets)
    return mixing.astype(updates.dtype) @ updates, counts.astype(np.int64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "size"), [(10, 2), (10, 3), (7, 1), (5, 9), (12, 4)])
def test_bucketing_equals_the_mixing_product(
    dtype: type[np.floating[Any]], n: int, size: int
) -> None:
    x = honest_updates(n, 31, seed=n).astype(dtype)
    counts = np.arange(1, n + 1, dtype=np.int64)
    got, got_counts = bucketing(x, counts, bucket_size=size, rng=np.random.default_rng(5))
    want, want_counts = previous_bucketing(x, counts, size, seed=5)
    np.testing.assert_array_equal(got_counts, want_counts)
    assert got.dtype == dtype and got.shape == want.shape
    # both are sums of at most s rows with weights summing to 1: (s + 1) eps max|x| each
    eps = float(np.finfo(dtype).eps)
    bound = 2 * (size + 1) * eps * np.abs(x).max(axis=0)
    assert np.all(np.abs(got - want) <= bound)


@pytest.mark.parametrize(("n", "trimmed"), [(11, 0), (11, 2), (50, 5), (100, 10), (9, 4)])
def test_trimmed_mean_within_the_mixture_bound_of_the_float64_mean(n: int, trimmed: int) -> None:
    x = honest_updates(n, 2_000, seed=n).astype(np.float32)
    x[:trimmed] *= 1e4  # outliers the trim must drop
    kept = np.sort(x.astype(np.float64), axis=0)[trimmed : n - trimmed]
    reference = kept.mean(axis=0)  # the previous implementation: a float64 mean
    got = trimmed_mean(x, num_trimmed=trimmed)
    assert got.dtype == np.float32
    # a mixture of n - 2b rows in float32: (n - 2b + 1) eps |x| (the dot-product bound)
    bound = (n - 2 * trimmed + 1) * EPS32 * np.abs(kept).max(axis=0)
    assert np.all(np.abs(got - reference) <= bound)


def previous_geometric_median(x: F64, *, nu: float, steps: int, tol: float) -> F64:
    """The rule before the rewrite, in plain float64: Weiszfeld from the mean, then the Vardi &
    Zhang test at the data point nearest the last iterate, always with its two passes."""
    centre = x.mean(axis=0)
    distance = np.linalg.norm(x - centre, axis=1)
    objective = distance.sum()
    for _ in range(steps):
        inverse = 1.0 / np.maximum(distance, nu)
        centre = (inverse / inverse.sum()) @ x
        distance = np.linalg.norm(x - centre, axis=1)
        previous, objective = objective, distance.sum()
        if abs(previous - objective) <= tol * objective:
            break
    k = int(np.argmin(distance))
    to_vertex = np.linalg.norm(x - x[k], axis=1)
    away = to_vertex > 0
    inverse = np.where(away, 1.0 / np.where(away, to_vertex, 1.0), 0.0)
    pull = inverse.sum() * x[k] - inverse @ x
    return x[k].copy() if np.linalg.norm(pull) <= np.count_nonzero(~away) else centre


def geometric_median_cases() -> list[F64]:
    spread = honest_updates(15, 40, seed=7)
    majority = np.repeat(honest_updates(1, 40, seed=8), 8, axis=0)
    vertex = np.vstack([majority, honest_updates(7, 40, seed=9)])  # 8 of 15 equal: a vertex
    line = np.outer(np.array([0.0, 1.0, 2.0, 10.0, 11.0]), np.ones(40))  # median at x_2
    outliers = spread.copy()
    outliers[:4] += 50.0
    return [spread, vertex, line, outliers]


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize(("steps", "tol"), [(3, 0.0), (100, 1e-6)])
def test_geometric_median_equals_the_previous_rule(case: int, steps: int, tol: float) -> None:
    x = geometric_median_cases()[case]
    got = geometric_median(x, smoothing=1e-6, max_iterations=steps, tolerance=tol)
    want = previous_geometric_median(x, nu=1e-6, steps=steps, tol=tol)
    # same iterates up to float64 rounding of the distances (ddot against a row-wise norm)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    if case in (1, 2) and steps == 100:  # the vertex is returned exactly
        assert any(np.array_equal(got, row) for row in x)


@pytest.mark.parametrize("n", [1, 2, 9, 10])
def test_blocked_sorts_equal_numpy_on_whole_columns(
    n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blocks of 7 columns over d = 23 (the last one short), as 1024 columns split d = 1e6.
    monkeypatch.setattr(_math, "_SORT_BLOCK", 7)
    x = honest_updates(n, 23, seed=n)
    x[0, 3] = np.nan  # sorts last in a block as in np.sort
    np.testing.assert_array_equal(median(x), np.sort(x, axis=0)[[(n - 1) // 2, n // 2]].mean(0))
    trimmed = (n - 1) // 2
    kept = np.sort(x, axis=0)[trimmed : n - trimmed]
    want = kept.mean(axis=0)  # float64: the mixture's rounding is at the 1e-16 level
    np.testing.assert_allclose(trimmed_mean(x, num_trimmed=trimmed), want, rtol=1e-14, atol=1e-17)

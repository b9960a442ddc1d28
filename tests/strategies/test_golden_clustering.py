"""The simple clustering baseline (FLPoison's DBSCAN + largest cluster) by hand."""

from __future__ import annotations

import numpy as np
from golden_helpers import agg, ones

X = np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [3.0, 3.0], [3.05, 3.0], [9.0, 9.0]])


def test_largest_cluster_mean() -> None:
    # eps = 0.15, min_samples = 2: clusters {0, 1, 2} (a chain of 0.1 steps) and {3, 4}
    # (0.05 apart); (9, 9) is noise. The larger cluster's mean is (0.1, 0).
    out = agg("simple_clustering", X, ones(6), eps=0.15, min_samples=2)
    np.testing.assert_allclose(out, [0.1, 0.0], rtol=1e-12, atol=1e-15)


def test_border_points_join_and_small_groups_are_noise() -> None:
    # min_samples = 3: only (0.1, 0) has 3 points within 0.15 (itself and both neighbours), so
    # it is the one core point; (0, 0) and (0.2, 0) join as border points; {3, 4} is noise.
    out = agg("simple_clustering", X, ones(6), eps=0.15, min_samples=3)
    np.testing.assert_allclose(out, [0.1, 0.0], rtol=1e-12, atol=1e-15)


def test_all_noise_keeps_the_global_model() -> None:
    out = agg("simple_clustering", X, ones(6), eps=0.15, min_samples=4)
    np.testing.assert_array_equal(out, [0.0, 0.0])

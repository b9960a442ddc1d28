"""Golden numbers computed by hand: selection rules, pre-aggregators and chains."""

from __future__ import annotations

import numpy as np
import pytest
from golden_helpers import agg, col, ones, pre

import strategies
from common.errors import AggregationError
from strategies import _math


def test_krum_and_multi_krum() -> None:
    x = col(0, 1, 3, 4.5, 100)  # n=5, f=1: k = n-f-2 = 2 nearest others
    # scores: 0 -> 1+9=10, 1 -> 1+4=5, 3 -> 4+2.25=6.25, 4.5 -> 2.25+12.25=14.5, 100 -> huge
    np.testing.assert_allclose(agg("krum", x, ones(5), num_byzantine=1), [1.0])
    np.testing.assert_allclose(
        agg("multi_krum", x, ones(5), num_byzantine=1, num_selected=2),
        [2.0],  # mean(1, 3)
    )


def test_krum_returns_the_exact_row() -> None:
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    out = agg("krum", x, ones(7), num_byzantine=2)
    assert any(np.array_equal(out, row) for row in x)


def test_bulyan_repeated_krum_then_closest_to_median() -> None:
    # n=7, f=1: theta=5 picked by repeated Krum (k = 4, 3, 2, 1, 1): 2, then 1 (tie with 3,
    # lower index), 3, 0 (tie with 4), 4; the outliers 50 and 100 are never picked.
    # Stage 2: median of {0,1,2,3,4} is 2; the beta = 3 closest values 1, 2, 3 average to 2.
    np.testing.assert_allclose(
        agg("bulyan", col(0, 1, 2, 3, 4, 50, 100), ones(7), num_byzantine=1), [2.0]
    )


def test_closest_to_median_window() -> None:
    ordered = np.array([[0, 0, 0], [1, 5, 1], [2, 6, 6], [3, 7, 7], [10, 8, 8]], dtype=float)
    # medians 2, 6, 6; three closest: {1,2,3}, {5,6,7}, {6,7,8} (1 is 5 away, 8 only 2)
    np.testing.assert_allclose(_math.closest_to_median_mean(ordered, 3), [2.0, 6.0, 7.0])


def test_clip_pre_aggregator() -> None:
    out, n = pre("clip", np.array([[3.0, 4.0], [0.0, 0.5]]), np.array([2, 3]), max_norm=1.0)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.5]])
    np.testing.assert_array_equal(n, [2, 3])


def test_nnm_mixes_each_update_with_its_nearest() -> None:
    # n=3, f=1: each row -> mean of its 2 nearest incl. itself
    out, _ = pre("nnm", col(0, 1, 10), ones(3), num_byzantine=1)
    np.testing.assert_allclose(out, col(0.5, 0.5, 5.5))


def test_bucketing_means_and_counts() -> None:
    # default_rng(0).permutation(5) == [2, 4, 3, 0, 1]: buckets {2,4}, {3,0}, {1}
    out, n = pre("bucketing", col(0, 10, 20, 30, 40), np.array([1, 2, 3, 4, 5]), bucket_size=2)
    np.testing.assert_allclose(out, col(30, 15, 10))
    np.testing.assert_array_equal(n, [8, 5, 2])
    assert n.dtype == np.int64


def test_chain_bound_is_the_strictest_stage() -> None:
    chain = strategies.build_chain(
        "krum",
        {"num_byzantine": 1},
        [("nnm", {"num_byzantine": 1}), ("bucketing", {"bucket_size": 2})],
    )
    # krum needs 2f+3 = 5 buckets -> bucketing needs (5-1)*2+1 = 9 -> nnm needs max(9, 3)
    assert chain.name == "nnm+bucketing+krum"
    assert chain.min_clients() == 9
    with pytest.raises(AggregationError, match=r"nnm\+bucketing\+krum: received n=8 .*n >= 9"):
        chain(np.zeros((8, 2)), ones(8))


def test_pairwise_distances_survive_a_large_common_component() -> None:
    # rows 1e3 from the origin but 1e-3 apart: an uncentred Gram expansion is off by 3e-4 relative
    rng = np.random.default_rng(0)
    x = rng.normal(size=50) * 1e3 + rng.normal(size=(6, 50)) * 1e-3
    direct = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
    np.testing.assert_allclose(_math.pairwise_squared_distances(x), direct, rtol=1e-8, atol=0)

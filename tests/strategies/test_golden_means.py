"""Golden numbers computed by hand: averaging, coordinate-wise and iterative rules."""

from __future__ import annotations

import numpy as np
import pytest
from golden_helpers import agg, col, ones

import strategies
from common.errors import AggregationError
from strategies.iterative import Centre


def test_fedavg_weighted_and_unweighted() -> None:
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    n = np.array([1, 3])
    np.testing.assert_allclose(agg("fedavg", x, n), [2.5, 3.5])  # (1*1+3*3)/4, (2+12)/4
    np.testing.assert_allclose(agg("fedavg", x, n, weighted=False), [2.0, 3.0])


@pytest.mark.parametrize("n", [10, 100])
def test_float32_fedavg_within_the_dot_product_error_bound(n: int) -> None:
    # Float32 mixtures accumulate in float32 (one BLAS pass, as Flower's aggregate does). The
    # classic bound for a dot product of length n, plus the rounding of the weights, is
    # |err_c| <= (n + 1) eps sum_i |w_i x_ic|; mixed signs and scales make cancellation real.
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(n, 50_000)) * 10.0 ** rng.integers(-6, 2, size=(n, 1))).astype(np.float32)
    num_examples = rng.integers(1, 500, size=n)
    out = agg("fedavg", x, num_examples)
    assert out.dtype == np.float32
    w = num_examples / num_examples.sum()
    exact = w @ x.astype(np.float64)
    bound = (n + 1) * np.finfo(np.float32).eps * (w @ np.abs(x.astype(np.float64)))
    assert np.all(np.abs(out - exact) <= bound)


def test_fedavg_rejects_counts_without_positive_sum() -> None:
    with pytest.raises(AggregationError, match="positive sum"):
        agg("fedavg", np.ones((2, 2)), np.array([0, 0]))
    with pytest.raises(AggregationError, match="positive sum"):
        agg("fedavg", np.ones((2, 2)), np.array([-1, 3]))


def test_norm_bounding() -> None:
    x = np.array([[3.0, 4.0], [0.0, 1.0]])  # norms 5 and 1
    # clipped to [0.6, 0.8] and [0, 1]; plain mean; weighted 1:3
    np.testing.assert_allclose(agg("norm_bounding", x, ones(2), max_norm=1.0), [0.3, 0.9])
    np.testing.assert_allclose(
        agg("norm_bounding", x, np.array([1, 3]), max_norm=1.0), [0.15, 0.95]
    )


def test_median_odd_and_even() -> None:
    np.testing.assert_allclose(agg("median", col(1, 100, 3), ones(3)), [3.0])
    np.testing.assert_allclose(agg("median", col(1, 5, 2, 10), ones(4)), [3.5])


def test_trimmed_mean_drops_b_per_tail() -> None:
    x = np.array([[1.0, -50.0], [2.0, 0.0], [3.0, 1.0], [100.0, 2.0]])
    # column 0: drop 1 and 100 -> mean(2, 3); column 1: drop -50 and 2 -> mean(0, 1)
    np.testing.assert_allclose(agg("trimmed_mean", x, ones(4), num_trimmed=1), [2.5, 0.5])
    np.testing.assert_allclose(agg("trimmed_mean", x, ones(4), num_trimmed=0), [26.5, -11.75])


def test_geometric_median_of_equilateral_triangle_is_its_centre() -> None:
    x = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, np.sqrt(3.0)]])
    out = agg("geometric_median", x, ones(3), tolerance=0.0, max_iterations=200)
    np.testing.assert_allclose(out, [1.0, np.sqrt(3.0) / 3.0], atol=1e-9)


def test_geometric_median_in_one_dimension_is_the_median() -> None:
    # The median 1 is a data point: Weiszfeld alone creeps towards it (1e-5 after 2000 steps);
    # the vertex test returns it exactly, after a handful of steps too.
    out = agg("geometric_median", col(0, 1, 10), ones(3), tolerance=0.0, max_iterations=2000)
    np.testing.assert_array_equal(out, [1.0])
    np.testing.assert_array_equal(agg("geometric_median", col(0, 1, 10), ones(3)), [1.0])


def test_geometric_median_at_a_data_point_is_exact() -> None:
    # (0, 0) surrounded by three points at 120 degrees: the unit vectors from it cancel
    # (norm 0 <= its multiplicity 1), so it is the median. Moving one outer point to the
    # other side leaves a median off every data point, and the vertex test must not fire.
    x = np.array([[0.0, 0.0], [1.0, 0.0], [-0.5, np.sqrt(0.75)], [-0.5, -np.sqrt(0.75)]])
    np.testing.assert_array_equal(agg("geometric_median", x, ones(4), max_iterations=3), [0, 0])
    y = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # a square: its centre
    np.testing.assert_allclose(agg("geometric_median", y, ones(4)), [0.5, 0.5], atol=1e-9)


def test_centered_clipping_carries_its_centre_between_rounds() -> None:
    rule = strategies.get_aggregator("centered_clipping", radius=1.0)
    x = np.array([[3.0, 4.0]])
    (state,) = rule.init(2)
    assert isinstance(state, Centre)
    np.testing.assert_array_equal(state.centre, [0.0, 0.0])
    first, (state,) = rule.update(x, ones(1), (state,), rng=np.random.default_rng(0))
    np.testing.assert_allclose(first, [0.6, 0.8])  # (3,4) clipped to radius 1 around 0
    second, (state,) = rule.update(x, ones(1), (state,), rng=np.random.default_rng(0))
    # x - v = (2.4, 3.2), norm 4, scaled by 1/4 -> v = (0.6, 0.8) + (0.6, 0.8)
    np.testing.assert_allclose(second, [1.2, 1.6])
    np.testing.assert_allclose(state.centre, [1.2, 1.6])


def test_centered_clipping_inner_iterations() -> None:
    x = col(-10, 0, 10, 100)  # v0 = 0: steps (-1 + 0 + 1 + 1)/4 -> v1 = 0.25
    out = agg("centered_clipping", x, ones(4), radius=1.0, iterations=2)
    # around 0.25: -1, -0.25, +1, +1 -> mean 0.1875 -> v2 = 0.4375
    np.testing.assert_allclose(out, [0.4375])


def test_centered_clipping_rejects_a_foreign_state() -> None:
    rule = strategies.get_aggregator("centered_clipping", radius=1.0)
    rng = np.random.default_rng(0)
    with pytest.raises(AggregationError, match=r"centered_clipping: state must be the Centre"):
        rule.update(np.ones((2, 3)), ones(2), rule.init(4), rng=rng)
    with pytest.raises(AggregationError, match=r"state must be the tuple of 1 stage states"):
        rule.update(np.ones((2, 3)), ones(2), rule.init(3) + rule.init(3), rng=rng)

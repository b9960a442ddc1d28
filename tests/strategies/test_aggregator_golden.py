"""Golden numbers computed by hand for every rule and pre-aggregator, and the error paths."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import strategies
from fedshield.errors import AggregationError, ConfigError
from strategies import _math

Vec = NDArray[np.floating[Any]]
Counts = NDArray[np.int64]


def col(*values: float) -> Vec:
    """One-coordinate updates: a column of n rows."""
    return np.array(values, dtype=np.float64)[:, None]


def ones(n: int) -> Counts:
    return np.ones(n, dtype=np.int64)


def agg(name: str, updates: Vec, num_examples: Counts, **params: Any) -> Vec:
    return strategies.get_aggregator(name, **params)(updates, num_examples)


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
    x = (rng.normal(size=(n, 50_000)) * 10.0 ** rng.integers(-6, 2, size=(n, 1))).astype(
        np.float32
    )
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


def test_geometric_median_of_equilateral_triangle_is_its_centre() -> None:
    x = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, np.sqrt(3.0)]])
    out = agg("geometric_median", x, ones(3), tolerance=0.0, max_iterations=200)
    np.testing.assert_allclose(out, [1.0, np.sqrt(3.0) / 3.0], atol=1e-9)


def test_geometric_median_in_one_dimension_is_the_median() -> None:
    out = agg("geometric_median", col(0, 1, 10), ones(3), tolerance=0.0, max_iterations=2000)
    np.testing.assert_allclose(out, [1.0], atol=1e-5)


def test_centered_clipping_carries_its_centre_between_rounds() -> None:
    rule = strategies.get_aggregator("centered_clipping", radius=1.0)
    x = np.array([[3.0, 4.0]])
    state = rule.init(2)
    np.testing.assert_array_equal(np.asarray(state), [0.0, 0.0])
    first, state = rule.step(x, ones(1), state, rng=np.random.default_rng(0))
    np.testing.assert_allclose(first, [0.6, 0.8])  # (3,4) clipped to radius 1 around 0
    second, state = rule.step(x, ones(1), state, rng=np.random.default_rng(0))
    # x - v = (2.4, 3.2), norm 4, scaled by 1/4 -> v = (0.6, 0.8) + (0.6, 0.8)
    np.testing.assert_allclose(second, [1.2, 1.6])
    np.testing.assert_allclose(np.asarray(state), [1.2, 1.6])


def test_centered_clipping_inner_iterations() -> None:
    x = col(-10, 0, 10, 100)  # v0 = 0: steps (-1 + 0 + 1 + 1)/4 -> v1 = 0.25
    out = agg("centered_clipping", x, ones(4), radius=1.0, iterations=2)
    # around 0.25: -1, -0.25, +1, +1 -> mean 0.1875 -> v2 = 0.4375
    np.testing.assert_allclose(out, [0.4375])


def test_centered_clipping_rejects_a_foreign_state() -> None:
    rule = strategies.get_aggregator("centered_clipping", radius=1.0)
    with pytest.raises(AggregationError, match="state must be the"):
        rule.step(np.ones((2, 3)), ones(2), rule.init(4), rng=np.random.default_rng(0))


def pre(name: str, **params: Any) -> strategies.base.FunctionPreAggregator:
    return strategies.get_pre_aggregator(name, params)


def test_clip_pre_aggregator() -> None:
    out, n = pre("clip", max_norm=1.0)(
        np.array([[3.0, 4.0], [0.0, 0.5]]), np.array([2, 3]), rng=np.random.default_rng(0)
    )
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.5]])
    np.testing.assert_array_equal(n, [2, 3])


def test_nnm_mixes_each_update_with_its_nearest() -> None:
    # n=3, f=1: each row -> mean of its 2 nearest incl. itself
    out, _ = pre("nnm", num_byzantine=1)(col(0, 1, 10), ones(3), rng=np.random.default_rng(0))
    np.testing.assert_allclose(out, col(0.5, 0.5, 5.5))


def test_bucketing_means_and_counts() -> None:
    # default_rng(0).permutation(5) == [2, 4, 3, 0, 1]: buckets {2,4}, {3,0}, {1}
    out, n = pre("bucketing", bucket_size=2)(
        col(0, 10, 20, 30, 40), np.array([1, 2, 3, 4, 5]), rng=np.random.default_rng(0)
    )
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


@pytest.mark.parametrize(
    ("name", "params", "needed", "bound"),
    [
        ("krum", {"num_byzantine": 2}, 7, "(n >= 2f+3)"),
        ("multi_krum", {"num_byzantine": 1, "num_selected": 6}, 7, "(n >= max(2f+3, m+f))"),
        ("bulyan", {"num_byzantine": 2}, 11, "(n >= 4f+3)"),
        ("trimmed_mean", {"num_trimmed": 3}, 7, "(n >= 2b+1)"),
    ],
)
def test_bound_violation_names_rule_n_and_bound(
    name: str, params: dict[str, Any], needed: int, bound: str
) -> None:
    rule = strategies.get_aggregator(name, **params)
    assert rule.min_clients() == needed
    with pytest.raises(
        AggregationError, match=rf"^{name}: received n={needed - 1} .*{re.escape(bound)}$"
    ):
        rule(np.zeros((needed - 1, 3)), ones(needed - 1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_byzantin": 1}, r"^defense\.params\.num_byzantin: unknown key"),
        (
            {"num_byzantine": -1},
            r"^defense\.params\.num_byzantine: got -1; .*greater than or equal to 0",
        ),
        ({"num_byzantine": "two"}, r"^defense\.params\.num_byzantine: got 'two'"),
    ],
)
def test_bad_rule_params_raise_one_line_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        strategies.get_aggregator("krum", **kwargs)
    assert "\n" not in str(err.value)


def test_out_of_range_params_of_other_rules() -> None:
    with pytest.raises(ConfigError, match=r"defense\.params\.max_norm: got 0\.0"):
        strategies.get_aggregator("norm_bounding", max_norm=0.0)
    with pytest.raises(ConfigError, match=r"defense\.params\.radius: required field is missing"):
        strategies.get_aggregator("centered_clipping")
    with pytest.raises(ConfigError, match=r"defense\.params\.num_selected: got 0"):
        strategies.get_aggregator("multi_krum", num_selected=0)
    with pytest.raises(ConfigError, match=r"defense\.params\.smoothing: got nan"):
        strategies.get_aggregator("geometric_median", smoothing=float("nan"))


def test_chain_errors_name_the_field_path() -> None:
    with pytest.raises(ConfigError, match=r"^defense\.pre\[1\]\.params\.bucket_size: got 0"):
        strategies.build_chain(
            "median", {}, [("clip", {"max_norm": 1.0}), ("bucketing", {"bucket_size": 0})]
        )
    with pytest.raises(
        ConfigError,
        match=r"^defense\.pre\[0\]\.name: unknown pre-aggregator 'nmm'; "
        r"valid: bucketing, clip, nnm$",
    ):
        strategies.build_chain("median", {}, [("nmm", {})])
    with pytest.raises(
        ConfigError, match=r"^defense\.aggregator: unknown aggregator 'krun'; valid: .*krum"
    ):
        strategies.build_chain("krun", {})
    with pytest.raises(ConfigError, match=r"^scenario\.defense\.params\.num_trimmed: got -1"):
        strategies.build_chain("trimmed_mean", {"num_trimmed": -1}, where="scenario.defense")


def test_pairwise_distances_survive_a_large_common_component() -> None:
    # rows 1e3 from the origin but 1e-3 apart: an uncentred Gram expansion is off by 3e-4 relative
    rng = np.random.default_rng(0)
    x = rng.normal(size=50) * 1e3 + rng.normal(size=(6, 50)) * 1e-3
    direct = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
    np.testing.assert_allclose(_math.pairwise_squared_distances(x), direct, rtol=1e-8, atol=0)

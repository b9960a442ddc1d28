"""Golden numbers computed by hand for every rule and pre-aggregator, and the error paths."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import strategies
from common.errors import AggregationError, ConfigError
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


def test_dnc_drops_the_largest_projections_from_the_mean() -> None:
    # One coordinate: v = +-1 and s_i = (x_i - mean)^2 with mean 21.2 (the outlier pulls it).
    # m=1 drops 100 (s = 6209); m=2 also drops 0 (s = 449.4, more than 3's 331.24).
    x = col(0, 1, 2, 3, 100)
    np.testing.assert_allclose(agg("dnc", x, ones(5), num_byzantine=1), [1.5])
    np.testing.assert_allclose(agg("dnc", x, ones(5), num_byzantine=2), [2.0])
    # c = 0.5 drops floor(0.5 * 2) = 1; c = 0 drops nothing (the plain mean)
    np.testing.assert_allclose(agg("dnc", x, ones(5), num_byzantine=2, filter_fraction=0.5), [1.5])
    np.testing.assert_allclose(agg("dnc", x, ones(5), num_byzantine=2, filter_fraction=0.0), [21.2])


def test_dnc_top_singular_direction() -> None:
    # mean (2, 0); centred rows (-1, 1), (-1, -1), (-3, 1), (-3, -1), (8, 0); C^T C =
    # diag(84, 4), so v = (1, 0) and s = (1, 1, 9, 9, 64): m=1 drops (10, 0), though
    # (-1, 1) and (-1, -1) are farther from the mean along the second axis than (10, 0) is.
    x = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0], [10.0, 0.0]])
    np.testing.assert_allclose(agg("dnc", x, ones(5), num_byzantine=1), [0.0, 0.0], atol=1e-15)


@pytest.mark.parametrize(
    ("iterations", "expected"),
    [(1, [5.0, 0.0, 1.0]), (2, [6.0, 0.5, 5.5])],
)
def test_dnc_empty_intersection_averages_the_most_often_kept(
    iterations: int, expected: list[float]
) -> None:
    # b = 1 of d = 3 columns per iteration; default_rng(0) (what __call__ uses) draws column 2,
    # then column 1. n=3, m=1, c=2 keeps one update per iteration:
    #   column 2 = (1, 10, 0), mean 11/3: |x - mean| = 8/3, 19/3, 11/3 -> keeps row 0
    #   column 1 = (0, 1, 10), mean 11/3: |x - mean| = 11/3, 8/3, 19/3 -> keeps row 1
    # One iteration keeps row 0. Two keep disjoint sets: the intersection is empty, rows 0 and
    # 1 are each kept once (the most), so their mean is returned.
    draws = np.random.default_rng(0)
    assert [int(draws.choice(3, size=1, replace=False)[0]) for _ in range(2)] == [2, 1]
    x = np.array([[5.0, 0.0, 1.0], [7.0, 1.0, 10.0], [9.0, 10.0, 0.0]])
    out = agg(
        "dnc",
        x,
        ones(3),
        num_byzantine=1,
        filter_fraction=2.0,
        subsample_dim=1,
        num_iterations=iterations,
    )
    np.testing.assert_allclose(out, expected)


def test_dnc_matches_algorithm_2_with_an_svd() -> None:
    # A direct transcription of Shejwalkar & Houmansadr's Algorithm 2 (SVD of the centred
    # subsample, intersection of the good sets) with the same coordinate draws.
    rng = np.random.default_rng(3)
    n, d, f, b, iterations = 12, 40, 2, 15, 3
    x = rng.normal(size=(n, d))
    x[[4, 9]] += 6.0 * rng.choice([-1.0, 1.0], size=d)  # two shifted rows, never "last"
    draws = np.random.default_rng(0)
    good = set(range(n))
    for _ in range(iterations):
        sub = x[:, draws.choice(d, size=b, replace=False)]
        centred = sub - sub.mean(axis=0)
        v = np.linalg.svd(centred, full_matrices=False)[2][0]
        good &= set(np.argsort((centred @ v) ** 2)[: n - f].tolist())
    assert good == set(range(n)) - {4, 9}
    out = agg("dnc", x, ones(n), num_byzantine=f, subsample_dim=b, num_iterations=iterations)
    np.testing.assert_allclose(out, x[sorted(good)].mean(axis=0), rtol=1e-12, atol=1e-15)


def test_signguard_norm_band_sign_cluster_and_median_clip() -> None:
    x = np.array(
        [
            [1.0, 1.0, 1.0, 1.0],  # norm 2
            [1.0, 2.0, 2.0, 4.0],  # norm 5
            [2.0, 2.0, 2.0, 2.0],  # norm 4
            [-1.0, -1.0, -1.0, -1.0],  # norm 2, signs flipped
            [10.0, 10.0, 10.0, 10.0],  # norm 20: above R M
            [0.01, 0.01, 0.01, 0.01],  # norm 0.02: below L M
        ]
    )
    # M = median(0.02, 2, 2, 4, 5, 20) = 3, band (0.3, 9): rows 0-3 pass. Any sampled
    # coordinate gives sign statistics (1, 0, 0) to rows 0-2, 4, 5 and (0, 0, 1) to row 3
    # (each column divided by its maximum, 1; the zero column stays 0). Bandwidth: the
    # 3rd-nearest (self first) is 0 for the five equal rows and sqrt(2) for row 3, so
    # h = sqrt(2)/6; MeanShift finds the modes (1, 0, 0) (5 points) and (0, 0, 1) (1 point).
    # S = {0, 1, 2}; clipped to M = 3: (1, 1, 1, 1), 0.6 * row 1, 0.75 * row 2.
    expected = np.array([1.0 + 0.6 + 1.5, 1.0 + 1.2 + 1.5, 1.0 + 1.2 + 1.5, 1.0 + 2.4 + 1.5]) / 3
    np.testing.assert_allclose(agg("signguard", x, ones(6)), expected, rtol=1e-12)
    out32 = agg("signguard", x.astype(np.float32), ones(6))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, expected, rtol=1e-6)


def test_signguard_bandwidth_is_sklearns_estimate() -> None:
    from sklearn.cluster import estimate_bandwidth

    from strategies.filtering import mean_shift_bandwidth

    features = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1.0]])
    assert mean_shift_bandwidth(features) == pytest.approx(np.sqrt(2.0) / 6.0, rel=1e-15)
    for n in (1, 2, 3, 7, 30):
        features = np.random.default_rng(n).uniform(size=(n, 3))
        assert mean_shift_bandwidth(features) == pytest.approx(
            estimate_bandwidth(features, quantile=0.5), rel=1e-12
        )


def test_signguard_clusters_at_a_bandwidth_below_float32_resolution() -> None:
    from sklearn.cluster import MeanShift

    from strategies.filtering import largest_sign_cluster, mean_shift_bandwidth

    # Three equal statistics and two 3e-8 and 4e-8 away: h = (3e-8 + 4e-8 + ...)/5 ~ 1.4e-8.
    # sklearn's own bin seeding rounds the grid indices (~5e7) through float32, so no seed
    # lands within h of a point and it raises; the float64 seeds find the three equal rows.
    a = np.array([0.7, 0.3, 0.55])
    features = np.array([a, a, a, a + [3e-8, 0, 0], a + [0, 4e-8, 0]])
    bandwidth = mean_shift_bandwidth(features)
    assert 1e-8 < bandwidth < 2e-8
    with pytest.raises(ValueError, match="No point was within bandwidth"):
        MeanShift(bandwidth=bandwidth, bin_seeding=True, cluster_all=False).fit(features)
    np.testing.assert_array_equal(largest_sign_cluster(features), [1, 1, 1, 0, 0])


def test_signguard_empty_selection_keeps_the_global_model() -> None:
    # Norms 0.01, 50, 60 (positive) and 1, 2 (negative): M = 2, band (0.2, 6) keeps only the
    # negative rows. Sign statistics: (1, 1, 0) for the three positive rows, (0, 1, 1) for the
    # two negative ones; the 2nd-nearest (self first) is an exact copy for every row, so the
    # bandwidth is 0 and the largest group of equal statistics, the positive rows, is S2.
    # S1 & S2 is empty: the aggregate is zero.
    x = np.array([[0.01, 0.0], [50.0, 0.0], [60.0, 0.0], [-1.0, 0.0], [-2.0, 0.0]])
    out = agg("signguard", x.astype(np.float32), ones(5), selection_fraction=1.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0.0, 0.0])
    # With a majority of zero updates M = 0 and nothing passes the band either.
    np.testing.assert_array_equal(agg("signguard", col(0, 0, 5), ones(3)), [0.0])


def test_filtering_rule_bounds() -> None:
    rule = strategies.get_aggregator("dnc", num_byzantine=3, filter_fraction=1.5)
    assert rule.min_clients() == 5  # floor(1.5 * 3) + 1
    with pytest.raises(
        AggregationError, match=r"^dnc: received n=4 .*\(n > c\*m, i\.e\. n >= floor\(c\*m\)\+1\)$"
    ):
        rule(np.zeros((4, 3)), ones(4))
    assert strategies.get_aggregator("signguard").min_clients() == 1
    np.testing.assert_allclose(agg("signguard", np.array([[3.0, -4.0]]), ones(1)), [3.0, -4.0])


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("dnc", {"niters": 5}, r"^defense\.params\.niters: unknown key"),
        (
            "dnc",
            {"num_iterations": 0},
            r"^defense\.params\.num_iterations: got 0; .*greater than or equal to 1$",
        ),
        ("dnc", {"subsample_dim": 0}, r"^defense\.params\.subsample_dim: got 0; "),
        ("dnc", {"filter_fraction": -0.5}, r"^defense\.params\.filter_fraction: got -0\.5; "),
        ("dnc", {"filter_fraction": float("inf")}, r"^defense\.params\.filter_fraction: got inf"),
        ("signguard", {"selection_fraction": 0.0}, r"^defense\.params\.selection_fraction: got 0"),
        ("signguard", {"selection_fraction": 1.5}, r"^defense\.params\.selection_fraction: got 1"),
        ("signguard", {"lower_bound": -0.1}, r"^defense\.params\.lower_bound: got -0\.1; "),
        (
            "signguard",
            {"upper_bound": 0.05},
            r"^defense\.params\.upper_bound: got 0\.05; .*must exceed lower_bound \(0\.1\)$",
        ),
        (
            "signguard",
            {"lower_bound": 2.0, "upper_bound": 2.0},
            r"^defense\.params\.upper_bound: got 2\.0; .*must exceed lower_bound \(2\.0\)$",
        ),
        ("signguard", {"num_byzantine": 1}, r"^defense\.params\.num_byzantine: unknown key"),
    ],
)
def test_bad_filtering_params_raise_one_line_config_error(
    name: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        strategies.get_aggregator(name, **params)
    assert "\n" not in str(err.value)

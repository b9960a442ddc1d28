"""Golden numbers computed by hand for DnC and SignGuard, and their bounds."""

from __future__ import annotations

import numpy as np
import pytest
from golden_helpers import agg, col, ones

import strategies
from common.errors import AggregationError


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

    from strategies.signguard import mean_shift_bandwidth

    features = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1.0]])
    assert mean_shift_bandwidth(features) == pytest.approx(np.sqrt(2.0) / 6.0, rel=1e-15)
    for n in (1, 2, 3, 7, 30):
        features = np.random.default_rng(n).uniform(size=(n, 3))
        assert mean_shift_bandwidth(features) == pytest.approx(
            estimate_bandwidth(features, quantile=0.5), rel=1e-12
        )


def test_signguard_clusters_at_a_bandwidth_below_float32_resolution() -> None:
    from sklearn.cluster import MeanShift

    from strategies.signguard import largest_sign_cluster, mean_shift_bandwidth

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

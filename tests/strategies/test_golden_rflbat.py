"""RFLBAT (Wang et al. 2022) by hand: the principal coordinates, the outlier passes, the cluster
choice by cosine, the gap statistic where its answer is forced, and colluding poisoners."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from golden_helpers import ones

import strategies
from common.errors import ConfigError
from strategies.kmeans import gap_clusters, kmeans
from strategies.rflbat import inliers, least_alike_cluster, principal_components

HONEST = [[1, 0.3, 0], [1, -0.3, 0], [1, 0, 0.3], [1, 0, -0.3], [1, 0.2, 0.2], [1, -0.2, -0.2]]


def test_principal_coordinates_by_hand() -> None:
    # Centred rows (+-1, 0) and (0, +-0.5) (a shift by (3, 3, 7) changes nothing): the first
    # axis is x (variance 1/2), the second y (1/8); a third coordinate constant is no axis.
    x = np.array([[4.0, 3.0, 7.0], [2.0, 3.0, 7.0], [3.0, 3.5, 7.0], [3.0, 2.5, 7.0]])
    coords = np.abs(principal_components(x))  # each axis's sign is arbitrary
    np.testing.assert_allclose(coords, [[1, 0], [1, 0], [0, 0.5], [0, 0.5]], atol=1e-12)
    # One update, or rows on a line: the missing axes are zero.
    np.testing.assert_array_equal(principal_components(np.ones((1, 3))), [[0.0, 0.0]])
    line = np.abs(principal_components(np.array([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0]])))
    np.testing.assert_allclose(line, [[2, 0], [0, 0], [2, 0]], atol=1e-12)


def test_outlier_pass_by_hand() -> None:
    # Points 0, 1, 2, 10 on a line: summed distances 13, 11, 11, 27, median 12.
    points = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    members = np.arange(4)
    np.testing.assert_array_equal(inliers(points, members, 2.0), [0, 1, 2])  # 27 > 24
    np.testing.assert_array_equal(inliers(points, members, 2.25), [0, 1, 2, 3])  # 27 <= 27
    np.testing.assert_array_equal(inliers(points, np.array([1, 2]), 1.0), [1, 2])


def test_the_least_alike_cluster_is_kept_and_singletons_never() -> None:
    # Cluster 0 = {0, 1, 2}: mean similarities (1 + .5 + .2)/3, (.5 + 1 + .5)/3, (.2 + .5 + 1)/3
    # -> median 17/30. Cluster 1 = {3, 4}: (1 + .9)/2 = 0.95. Cluster 2 = {5}: a singleton.
    s = np.eye(6)
    for i, j, value in [(0, 1, 0.5), (0, 2, 0.2), (1, 2, 0.5), (3, 4, 0.9)]:
        s[i, j] = s[j, i] = value
    members = np.array([5, 0, 3, 1, 4, 2])
    labels = np.array([2, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(least_alike_cluster(s, members, labels), [0, 1, 2])


@pytest.mark.parametrize("seed", range(5))
def test_the_gap_statistic_where_its_answer_is_forced(seed: int) -> None:
    rng = np.random.default_rng(seed)
    two = np.array([[0.0, 0.0]] * 3 + [[1.0, 2.0]] * 4)  # W_2 = 0: an infinite gap at k = 2
    assert gap_clusters(two, rng=rng, num_references=5, max_clusters=10, restarts=3) == 2
    one = np.ones((5, 2))
    assert gap_clusters(one, rng=rng, num_references=5, max_clusters=10, restarts=3) == 1
    fit = kmeans(two, 2, rng=rng, restarts=3)
    assert fit.dispersion == 0.0
    assert set(fit.labels[:3]) == {fit.labels[0]} and set(fit.labels[3:]) == {1 - fit.labels[0]}


@pytest.mark.parametrize("seed", range(10))
def test_colluding_poisoners_form_the_most_alike_cluster_and_are_dropped(seed: int) -> None:
    # The adversary: 4 of 10 clients who send one shared backdoor update (cosine 1 with each
    # other); the 6 honest updates differ (pairwise cosines 0.84-1). On the principal axes the
    # two groups lie far apart, the gap statistic (K = 2) finds two clusters for any draw, and
    # the poisoners' cluster (median mean cosine 1) loses to the honest one. Both outlier passes
    # keep the honest six (their summed distances are within 4 x their median): mean (1, 0, 0).
    x = np.array(HONEST + [[0.0, 0.0, 1.0]] * 4)
    rule = strategies.get_aggregator("rflbat", max_clusters=2)
    out, _ = rule.update(x, ones(10), rule.init(3), rng=np.random.default_rng(seed))
    np.testing.assert_allclose(out, [1.0, 0.0, 0.0], atol=1e-15)


def test_identical_updates_are_all_kept() -> None:
    # Every summed distance is 0 = eps x median: kept (the authors' strict < would drop all).
    x = np.tile([0.5, -0.25], (5, 1))
    np.testing.assert_array_equal(strategies.get_aggregator("rflbat")(x, ones(5)), [0.5, -0.25])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"eps1": 0.5}, r"^defense\.params\.eps1: got 0\.5; .*greater than or equal to 1"),
        ({"eps2": float("inf")}, r"^defense\.params\.eps2: got inf"),
        ({"num_references": 0}, r"^defense\.params\.num_references: got 0"),
        ({"max_clusters": 0}, r"^defense\.params\.max_clusters: got 0"),
        ({"k_max": 9}, r"^defense\.params\.k_max: unknown key"),
    ],
)
def test_bad_parameters_raise_one_line_config_error(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        strategies.get_aggregator("rflbat", **params)
    assert "\n" not in str(err.value)

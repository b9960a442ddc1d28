"""Auror (Shen et al. 2016, as FLPoison runs it) by hand: the 1-D 2-means gap, the majority of
the 2-means on the indicative coordinates, and the coordinates fixed after the search rounds."""

from __future__ import annotations

import numpy as np
from golden_helpers import col, ones

import strategies
from strategies.auror import majority_of_two_means, two_means_gap


def test_two_means_gap_is_the_optimal_split() -> None:
    # {0} | {1, 10}: cost 0 + 2 * 4.5^2 = 40.5; {0, 1} | {10}: 2 * 0.5^2 + 0 = 0.5 (optimal):
    # centres 0.5 and 10, gap 9.5. A constant column has gap 0.
    x = np.array([[0.0, 3.0], [1.0, 3.0], [10.0, 3.0]])
    np.testing.assert_allclose(two_means_gap(x), [9.5, 0.0])


def test_majority_of_two_means_and_its_tie() -> None:
    points = col(0.0, 0.1, 0.2, 5.0, 5.1)
    np.testing.assert_array_equal(majority_of_two_means(points), [1, 1, 1, 0, 0])
    # Two against two: the group whose centre is nearer the origin (0.05 rather than 5.05).
    np.testing.assert_array_equal(majority_of_two_means(col(5.0, 0.0, 5.1, 0.1)), [0, 1, 0, 1])


def test_indicative_coordinates_are_fixed_after_the_search_rounds() -> None:
    rule = strategies.get_aggregator("auror", indicative_threshold=1.0, indicative_rounds=1)
    rng = np.random.default_rng(0)
    # Round 1: coordinate 0 splits {0, 0.1, 0.2, 0.1} from {4} (gap 3.9); coordinate 1 does not
    # (gap 0.2). The four form the majority: mean (0.1, 0.5).
    x1 = np.array([[0.0, 0.5], [0.1, 0.4], [0.2, 0.6], [0.1, 0.5], [4.0, 0.5]])
    out, state = rule.update(x1, ones(5), rule.init(2), rng=rng)
    np.testing.assert_allclose(out, [0.1, 0.5], rtol=1e-12)
    np.testing.assert_array_equal(state[0].mask, [True, False])
    # Round 2: only coordinate 0 counts, though coordinate 1 now splits 3 / 2: on coordinate 0
    # the values are {0, 0.1} and {3, 3.1, 3.2}, so rows 2-4 are the majority.
    x2 = np.array([[0.0, 9.0], [0.1, 9.0], [3.0, 0.0], [3.1, 0.0], [3.2, 1.5]])
    out, state = rule.update(x2, ones(5), state, rng=rng)
    np.testing.assert_allclose(out, [3.1, 0.5], rtol=1e-12)
    np.testing.assert_array_equal(state[0].mask, [True, False])
    assert state[0].rounds == 2


def test_no_indicative_coordinate_gives_the_mean() -> None:
    x = np.array([[0.0, 0.5], [0.1, 0.4], [0.2, 0.6]])
    out = strategies.get_aggregator("auror", indicative_threshold=1.0)(x, ones(3))
    np.testing.assert_allclose(out, [0.1, 0.5], rtol=1e-12)

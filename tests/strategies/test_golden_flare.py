"""FLARE (Wang et al. 2022) by hand: the unbiased MMD, the nearest-neighbour votes with ties,
the softmax trust scores, and two colluding poisoners whose representations stand apart."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from golden_helpers import ones
from numpy.typing import NDArray

import strategies
from common.errors import AggregationError, ConfigError
from strategies.flare import mmd_matrix, neighbour_votes, trust_scores
from strategies.layout import Inspection, Layout


def test_unbiased_mmd_by_hand() -> None:
    # gamma = ln 2, so k(u, v) = 2^-(u - v)^2. Sets of 2 one-dimensional points:
    # A = {0, 0}: within 1 (off-diagonal mean); B = {1, 1}: within 1; C = {0, 1}: within 1/2.
    # MMD(A, B) = 1 + 1 - 2 (4 x 1/2) / 4 = 1; MMD(A, C) = 1 + 1/2 - 2 (1 + 1/2 + 1 + 1/2) / 4
    # = 0, MMD(B, C) = 0 likewise; MMD(C, C') with C' = C: 1/2 + 1/2 - 2 x 3/4 < 0 -> 0.
    sets = np.array([[[0.0], [0.0]], [[1.0], [1.0]], [[0.0], [1.0]], [[0.0], [1.0]]])
    expected = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=float)
    np.testing.assert_allclose(mmd_matrix(sets, math.log(2.0)), expected, atol=1e-15)


def test_votes_with_ties_shared() -> None:
    # Positions 0, 1, 2, 3 (honest) and 10, 11 (poisoners), distance |p_i - p_j|; each votes
    # for its 2 nearest others. 0 -> 1, 2; 1 -> 0, 2 (both at 1); 2 -> 1, 3; 3 -> 2, 1;
    # 10 -> 11, 3; 11 -> 10, 3: counts 1, 3, 3, 3, 1, 1.
    p = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 11.0])
    d = np.abs(p[:, None] - p[None, :])
    np.testing.assert_array_equal(neighbour_votes(d, 2), [1, 3, 3, 3, 1, 1])
    # One neighbour each on 0, 1, 2, 3: 0 -> 1 and 3 -> 2 whole; voter 1 has 0 and 2 tied at 1
    # and gives each half, voter 2 likewise 1 and 3: counts 0.5, 1.5, 1.5, 0.5.
    d4 = d[:4, :4]
    np.testing.assert_array_equal(neighbour_votes(d4, 1), [0.5, 1.5, 1.5, 0.5])


def test_trust_scores_are_a_softmax_of_the_counts_over_their_mean() -> None:
    # counts 1, 3 (mean 2): exp(1/2) and exp(3/2) normalised.
    expected = np.array([math.exp(0.5), math.exp(1.5)]) / (math.exp(0.5) + math.exp(1.5))
    np.testing.assert_allclose(trust_scores(np.array([1.0, 3.0]), 1.0), expected, rtol=1e-15)
    np.testing.assert_array_equal(trust_scores(np.zeros(3), 1.0), [1 / 3, 1 / 3, 1 / 3])


def _positions_probe(positions: list[float]) -> Inspection:
    """Client i's representations: two copies of the point ``positions[i]`` (row i is one-hot),
    so MMD^2 = 2 - 2 exp(-gamma d^2) orders the pairs by their distance d."""

    def features(updates: NDArray[np.floating[Any]], aux_class: int | None) -> NDArray[np.float64]:
        at = np.asarray(positions)[np.argmax(updates, axis=1)]
        return np.repeat(at[:, None, None], 2, axis=1)

    return Inspection(Layout(((len(positions),),)), features=features)


def test_two_colluding_poisoners_get_the_least_weight() -> None:
    # The adversary: clients 4 and 5 whose models represent the auxiliary set alike, apart from
    # the four honest ones. Six clients, floor(0.5 x 6) - 1 = 2 votes each: counts as above,
    # 1, 3, 3, 3, 1, 1 (mean 2), so weights exp(1/2) and exp(3/2) over 3 exp(1/2) + 3 exp(3/2).
    x = np.eye(6)
    inspection = _positions_probe([0.0, 1.0, 2.0, 3.0, 10.0, 11.0])
    out = strategies.get_aggregator("flare", gamma=0.01)(x, ones(6), inspection=inspection)
    low, high = 1 / (3 * (1 + math.e)), math.e / (3 * (1 + math.e))
    np.testing.assert_allclose(out, [low, high, high, high, low, low], rtol=1e-12)


def test_the_rule_needs_the_feature_probe_and_two_examples() -> None:
    rule = strategies.get_aggregator("flare")
    assert rule.needs_layout() and rule.needs_features() and not rule.needs_ddifs()
    with pytest.raises(AggregationError, match=r"^flare: needs inspection\.features"):
        rule(np.eye(3), ones(3), inspection=Inspection(Layout(((3,),))))

    def one_example(updates: NDArray[np.floating[Any]], aux_class: int | None) -> Any:
        return np.zeros((len(updates), 1, 4))

    probe = Inspection(Layout(((3,),)), features=one_example)
    with pytest.raises(AggregationError, match=r"^flare: the auxiliary set has 1 example"):
        rule(np.eye(3), ones(3), inspection=probe)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"neighbour_fraction": 0.0}, r"^defense\.params\.neighbour_fraction: got 0\.0"),
        ({"neighbour_fraction": 1.5}, r"^defense\.params\.neighbour_fraction: got 1\.5"),
        ({"tau": 0}, r"^defense\.params\.tau: got 0"),
        ({"gamma": -1.0}, r"^defense\.params\.gamma: got -1\.0"),
        ({"aux_class": -1}, r"^defense\.params\.aux_class: got -1"),
        ({"k": 5}, r"^defense\.params\.k: unknown key"),
    ],
)
def test_bad_parameters_raise_one_line_config_error(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        strategies.get_aggregator("flare", **params)
    assert "\n" not in str(err.value)

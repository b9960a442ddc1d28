"""FoolsGold (Fung et al. 2020) by hand: sybils, pardoning, the logit, and the per-client
history keyed by pseudonymous ids across rounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from golden_helpers import ones

import strategies
from common.errors import AggregationError, ConfigError
from strategies.foolsgold import pardoned_weights


def test_two_sybils_get_weight_zero() -> None:
    # cos(sybil, sybil) = 1, cos(honest, sybil) = 0: honest weight 1 - 0 -> 0.99 -> logit 1;
    # sybils 1 - 1 = 0 -> log(0 + eps) + 0.5 < 0 -> 0.
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_array_equal(strategies.get_aggregator("foolsgold")(x, ones(3)), [1.0, 0.0])


def test_pardoning_and_the_logit_by_hand() -> None:
    # cos(A, B) = 0.6, cos(A, C) = cos(B, C) = 0.2: max similarities 0.6, 0.6, 0.2 (+ eps).
    # C is pardoned: cs[C][A] = cs[C][B] = 0.2 * 0.2 / 0.6 = 1/15, so C's weight is 14/15.
    # A and B: 1 - 0.6 = 0.4, rescaled by 14/15: 3/7, whose logit is ln(3/4) + 0.5 = 0.2123.
    # C: 14/15 rescaled is 1 -> 0.99 -> ln(99) + 0.5 > 1 -> 1.
    s = np.array([[1.0, 0.6, 0.2], [0.6, 1.0, 0.2], [0.2, 0.2, 1.0]])
    eps = 1e-6
    a = (1 - 0.6) / (1 - 0.2 * (0.2 + eps) / (0.6 + eps))
    expected = math.log(a / (1 - a) + eps) + 0.5
    assert expected == pytest.approx(math.log(0.75) + 0.5, abs=1e-5)
    np.testing.assert_allclose(pardoned_weights(s, eps), [expected, expected, 1.0], rtol=1e-12)


def test_identical_updates_are_all_sybils() -> None:
    x = np.tile([0.3, -0.2, 0.1], (5, 1))
    np.testing.assert_array_equal(strategies.get_aggregator("foolsgold")(x, ones(5)), np.zeros(3))


def test_history_is_keyed_by_client_id_across_rounds() -> None:
    rule = strategies.get_aggregator("foolsgold")
    state = rule.init(3)
    rng = np.random.default_rng(0)
    # Round 1: client 10 honest, clients 20 and 30 sybils. The server's pseudonyms are any ints.
    x1 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    out, state = rule.update(x1, ones(3), state, rng=rng, client_ids=np.array([10, 20, 30]))
    np.testing.assert_array_equal(out, [1.0, 0.0, 0.0])
    # Round 2, rows in another order, a new client 40. Histories: 10 = (2, 0, 0),
    # 20 = 30 = (0, 1, 1) (sybils again), 40 = (0, -1, 0): cosine 0 with 10 and -0.71 with the
    # sybils, so max similarity 0 like 10's. Weights 10: 1, 40: 1, sybils 0.
    x2 = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    out, state = rule.update(x2, ones(4), state, rng=rng, client_ids=np.array([30, 10, 20, 40]))
    np.testing.assert_allclose(out, [0.5, -0.5, 0.0], rtol=1e-12)
    (history,) = state
    np.testing.assert_array_equal(history.ids, [10, 20, 30, 40])
    np.testing.assert_array_equal(
        history.sums, [[2.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, -1.0, 0.0]]
    )


def test_client_ids_are_required_distinct_and_not_behind_a_pre_aggregator() -> None:
    rule = strategies.get_aggregator("foolsgold")
    x, rng = np.ones((2, 3)), np.random.default_rng(0)
    with pytest.raises(AggregationError, match="foolsgold: needs client_ids"):
        rule.update(x, ones(2), rule.init(3), rng=rng)
    with pytest.raises(AggregationError, match="distinct"):
        rule.update(x, ones(2), rule.init(3), rng=rng, client_ids=np.array([4, 4]))
    with pytest.raises(ConfigError, match="pre-aggregators mix rows"):
        strategies.build_chain("foolsgold", {}, pre=[("nnm", {})])

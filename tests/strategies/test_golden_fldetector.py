"""FLDetector (Zhang et al. 2022) by hand: the L-BFGS product on a quadratic, the normalised
prediction distances, the gap statistic's verdict, and the per-client state across rounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from golden_helpers import col, ones

import strategies
from server.checkpoint_state import read_checkpoint, write_checkpoint
from strategies.fldetector import DetectorState, lbfgs_hvp
from strategies.gap_statistic import number_of_clusters, two_means_upper, within_cluster_sums


def test_lbfgs_recovers_the_hessian_of_a_quadratic() -> None:
    # f(w) = w1^2 + 2.5 w2^2 (H = diag(2, 5)) in 3-D. Pairs s1 = e1, y1 = H e1 = 2 e1, then
    # s2 = e2, y2 = 5 e2. B0 = sigma I with sigma = y2.s2 / s2.s2 = 5. BFGS with pair 1:
    # B0 - B0 s1 s1' B0 / s1' B0 s1 + y1 y1' / y1' s1 = 5 I - 5 e1 e1' + 2 e1 e1' = diag(2, 5, 5);
    # pair 2 already holds (B e2 = 5 e2 = y2), so it changes nothing. B (1, 1, 1) = (2, 5, 5).
    steps = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    changes = np.array([[2.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    np.testing.assert_allclose(lbfgs_hvp(steps, changes, np.ones(3)), [2.0, 5.0, 5.0], atol=1e-12)


def test_one_pair_satisfies_the_secant_equation() -> None:
    # B s = y, and B v = sigma v for v orthogonal to s and y: sigma = y.s / s.s = 3.
    s, y = np.array([[1.0, 0.0, 0.0]]), np.array([[3.0, 1.0, 0.0]])
    np.testing.assert_allclose(lbfgs_hvp(s, y, np.array([1.0, 0.0, 2.0])), [3.0, 1.0, 6.0])


def run(rule: strategies.Rule, rounds: list[list[float]], ids: list[int]) -> list[float]:
    state, rng, outs = rule.init(1), np.random.default_rng(0), []
    for values in rounds:
        x = col(*values)
        out, state = rule.update(x, ones(len(x)), state, rng=rng, client_ids=np.array(ids))
        outs.append(float(out[0]))
    return outs


def test_a_client_that_strays_from_its_prediction_is_dropped_by_hand() -> None:
    # Three clients send 1 every round, client 3 sends 5, -1, 5, -1. Window N = 1.
    # Round 1: mean (3 + 5) / 4 = 2. Round 2: (3 - 1) / 4 = 0.5; first pair s = a1 = 2,
    # y = a2 - a1 = -1.5, so B = -0.75 (one pair in 1-D: y / s).
    # Round 3: B (w3 - w2) = -0.75 * 0.5 = -0.375; predictions 0.625 (honest), -1.375 (client
    # 3); distances 0.375 x 3 and 6.375, sum 7.5: scores 0.05, 0.05, 0.05, 0.85. Two distinct
    # scores: W_2 = 0, so the gap statistic says 2; client 3 is the high cluster: mean 1.
    # Round 4: pair s = a2 = 0.5, y = a3 - a2 = 0.5, B = 1, B a3 = 1; predictions 2 and 6,
    # distances 1, 1, 1, 7: scores 0.1 x 3, 0.7; dropped again: 1.
    rule = strategies.get_aggregator("fldetector", window=1)
    rounds = [[1, 1, 1, 5], [1, 1, 1, -1], [1, 1, 1, 5], [1, 1, 1, -1]]
    assert run(rule, rounds, [0, 1, 2, 3]) == pytest.approx([2.0, 0.5, 1.0, 1.0], abs=1e-12)


def test_the_scores_are_the_normalised_distances_keyed_by_client() -> None:
    rule = strategies.get_aggregator("fldetector", window=1)
    state, rng = rule.init(1), np.random.default_rng(0)
    for values in ([1, 1, 1, 5], [1, 1, 1, -1], [5, 1, 1, 1]):
        ids = np.array([30, 10, 20, 40]) if values[0] == 5 else np.array([10, 20, 40, 30])
        _, state = rule.update(col(*values), ones(4), state, rng=rng, client_ids=ids)
    (detector,) = state
    assert isinstance(detector, DetectorState)
    np.testing.assert_array_equal(detector.ids, [10, 20, 30, 40])
    np.testing.assert_allclose(detector.distances[:, 0], [0.05, 0.05, 0.85, 0.05], atol=1e-12)


def test_detection_waits_for_a_full_window_and_for_known_clients() -> None:
    # Window 2: round 3 has one distance per client, so nothing is dropped yet: (3 + 5) / 4.
    rounds = [[1, 1, 1, 5], [1, 1, 1, -1], [1, 1, 1, 5]]
    assert run(strategies.get_aggregator("fldetector", window=2), rounds, [0, 1, 2, 3])[2] == 2.0
    # A newcomer in round 3 has no prediction: no detection that round, the plain mean.
    rule = strategies.get_aggregator("fldetector", window=1)
    state, rng = rule.init(1), np.random.default_rng(0)
    for values, ids in (([1, 1, 1, 5], [0, 1, 2, 3]), ([1, 1, 1, -1], [0, 1, 2, 3])):
        _, state = rule.update(col(*values), ones(4), state, rng=rng, client_ids=np.array(ids))
    x = col(1, 1, 1, 5, 1)
    out, _ = rule.update(x, ones(5), state, rng=rng, client_ids=np.array([0, 1, 2, 3, 9]))
    assert out[0] == pytest.approx(9 / 5)


def test_consistent_clients_are_all_kept() -> None:
    # Honest clients whose updates follow the model exactly: every distance is 0, one cluster.
    rounds = [[1, 2, 3, 4]] * 5
    assert run(strategies.get_aggregator("fldetector", window=2), rounds, [0, 1, 2, 3]) == [2.5] * 5


def test_gap_statistic_tells_two_groups_from_a_spread() -> None:
    # The authors' criterion, B = 10 uniform references: evenly spread scores look like the
    # references (k = 1); two tight groups far apart are more than one cluster (the verdict
    # FLDetector acts on), whatever the draws.
    spread, groups = np.linspace(0.0, 1.0, 20), np.r_[np.full(15, 0.05), np.full(5, 0.3)]
    groups = groups + np.linspace(0.0, 0.002, 20)
    for seed in range(10):
        rng = np.random.default_rng(seed)
        assert number_of_clusters(spread, rng=rng, num_references=10, max_clusters=7) == 1
        assert number_of_clusters(groups, rng=rng, num_references=10, max_clusters=7) >= 2


def test_one_dimensional_k_means_is_exact() -> None:
    # {0, 1} | {10, 11, 12}: W_2 = 0.5 + 2 = 2.5; the upper cluster is the three large points.
    points = np.array([10.0, 0.0, 12.0, 1.0, 11.0])
    assert within_cluster_sums(points, 2)[1] == pytest.approx(2.5)
    np.testing.assert_array_equal(two_means_upper(points), [True, False, True, False, True])


def test_state_survives_the_checkpoint_file(tmp_path: Path) -> None:
    rule = strategies.get_aggregator("fldetector", window=1)
    state, rng = rule.init(1), np.random.default_rng(0)
    for values in ([1, 1, 1, 5], [1, 1, 1, -1]):
        _, state = rule.update(col(*values), ones(4), state, rng=rng, client_ids=np.arange(4))
    write_checkpoint(tmp_path, {"chain": state})
    restored = read_checkpoint(tmp_path)["chain"]
    assert isinstance(restored[0], DetectorState)
    x = col(1, 1, 1, 5)
    ids = np.arange(4)
    out, _ = rule.update(x, ones(4), restored, rng=np.random.default_rng(1), client_ids=ids)
    assert out[0] == 1.0

"""3DFed's feedback rules (Li et al., S&P 2023, Algorithms 3-4) against hand-computed cases.

The attacker plants ``v`` at coordinate ``I`` of its update; FedAvg over ``n`` equally weighted
updates moves the global model there by ``(v + sum of the others' I-th coordinates) / n``, so the
feedback ``f = Delta w[I] / v`` is ``1/n`` (plus the others' tiny share) when the server accepts
the update, ``s/n`` when norm bounding scales it by ``s``, about 0 when it is dropped, and noise
dominates it when the server adds weak-DP noise. The numbers below are written out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from attacks.noise_masks import (
    LAGRANGE_WEIGHT,
    NORM_WEIGHT,
    UPS_WEIGHT,
    coalition_masks,
    mask_gradients,
)
from attacks.threedfed_rules import (
    Status,
    adaptive_tuning,
    backdoor_scale,
    choose_indicators,
    plant_indicator,
    read_indicators,
)

V = 0.01  # a planted indicator (the 1e-2 floor: the coordinate's own update was 0)
OTHERS = np.array([1e-7, -2e-7, 0.0, 3e-7])  # four benign updates at I (sum 2e-7)


def test_fedavg_feedback_reads_accepted_clipped_rejected_and_weak_dp() -> None:
    n = 5
    accepted = (V + 2e-7) / n / V  # 0.20000400
    clipped = (0.3 * V + 2e-7) / n / V  # 0.06000400 <= 0.8 * 0.200004
    rejected = 2e-7 / n / V  # 4e-6 <= threshold 1e-4
    reading = read_indicators(np.array([accepted, clipped, rejected]), threshold=1e-4)
    assert reading.statuses == ("a", "c", "r") and not reading.weak_dp
    assert accepted == pytest.approx(0.200004) and clipped == pytest.approx(0.060004)
    # Weak DP: N(0, 0.05) noise of +0.03 on the coordinate: f = (0.002 + 0.03) / 0.01 = 3.2 > 1.
    noisy = (V / n + 0.03) / V
    assert read_indicators(np.array([accepted, noisy]), threshold=1e-4).weak_dp
    # ... or a negative feedback below -threshold (noise of -0.0025): f = -0.05.
    assert read_indicators(np.array([(V / n - 0.0025) / V]), threshold=1e-4).weak_dp
    # The clipped/accepted border is 0.8 of the largest feedback: 0.16 is clipped, 0.161 is not.
    assert read_indicators(np.array([0.2, 0.16, 0.161]), threshold=1e-4).statuses == (
        "a",
        "c",
        "a",
    )


def _uniforms(count: int, seed: int = 7) -> list[float]:
    """The ``random()`` draws behind ``Generator.uniform(a, b) = a + (b - a) u``."""
    rng = np.random.default_rng(seed)
    return [float(rng.random()) for _ in range(count)]


def test_partial_acceptance_draws_every_alpha_near_the_accepted_group() -> None:
    # 4 colluders, 2 groups: group 0 (a, a) is a candidate (2 >= 0.8 * 2), group 1 (c, r) not.
    alphas, decoys = adaptive_tuning(
        ("a", "a", "c", "r"),
        [0.3, 0.7],
        0,
        colluders=4,
        group_size=2,
        floor=0.0,
        rng=np.random.default_rng(7),
    )
    u = _uniforms(2)
    assert alphas == pytest.approx([0.3 + 0.1 * u[0], 0.3 + 0.1 * u[1]])
    assert decoys == 0  # a colluder was accepted: no decoy wanted


def test_all_groups_accepted_draw_between_the_two_smallest_alphas() -> None:
    alphas, _ = adaptive_tuning(
        ("a", "a", "a", "a"),
        [0.6, 0.2],
        0,
        colluders=4,
        group_size=2,
        floor=0.0,
        rng=np.random.default_rng(7),
    )
    u = _uniforms(2)
    assert alphas == pytest.approx([0.2 + 0.4 * u[0], 0.2 + 0.4 * u[1]])


def test_everything_rejected_asks_for_one_more_decoy_and_redraws_alpha() -> None:
    alphas, decoys = adaptive_tuning(
        ("r", "r", "r", "r"),
        [0.3, 0.7],
        0,
        colluders=4,
        group_size=2,
        floor=0.5,
        rng=np.random.default_rng(7),
    )
    u = _uniforms(2)
    assert decoys == 1 and alphas == pytest.approx([0.5 + 0.5 * u[0], 0.5 + 0.5 * u[1]])
    # Two decoys, one of them accepted: k = 2 - 1 = 1, and no +1 since a decoy got through.
    _, decoys = adaptive_tuning(
        ("r", "r", "r", "r", "a", "r"),
        [0.3, 0.7],
        2,
        colluders=4,
        group_size=2,
        floor=0.0,
        rng=np.random.default_rng(7),
    )
    assert decoys == 1


def test_one_group_keeps_an_accepted_alpha_and_clamps_into_the_open_interval() -> None:
    def one_group(statuses: tuple[Status, ...], seed: int) -> list[float]:
        alphas, _ = adaptive_tuning(
            statuses,
            [0.42],
            0,
            colluders=2,
            group_size=2,
            floor=0.0,
            rng=np.random.default_rng(seed),
        )
        return alphas

    assert one_group(("a", "a"), 0) == [0.42]
    redrawn = one_group(("a", "c"), 7)
    assert redrawn == pytest.approx([_uniforms(1)[0]])
    # Group 0 accepted at alpha 0.95: both groups draw from U(0.95, 1.05). Seed 0's draws
    # 0.637 and 0.270 give 1.0137 (>= 1, clamped to 0.99) and 0.9770.
    alphas, _ = adaptive_tuning(
        ("a", "a", "r", "r"),
        [0.95, 0.1],
        0,
        colluders=4,
        group_size=2,
        floor=0.0,
        rng=np.random.default_rng(0),
    )
    assert alphas == pytest.approx([0.99, 0.95 + 0.1 * 0.2697867137638703])


def test_backdoor_scale_only_grows_to_the_benign_norm_by_at_most_max_scale() -> None:
    assert backdoor_scale(2.0, 0.5, max_scale=5.0) == 4.0
    assert backdoor_scale(10.0, 1.0, max_scale=5.0) == 5.0
    assert backdoor_scale(1.0, 2.0, max_scale=5.0) == 1.0


def test_indicators_are_flat_low_update_coordinates() -> None:
    # 30 coordinates; count 2 -> the 20 smallest |backdoor| + |benign| are candidates (0..19),
    # and among them the two of smallest |curvature|: 7 (0.0) and 12 (0.001).
    backdoor = np.arange(30, dtype=np.float64) * 0.01
    curvature = np.ones(30)
    curvature[[7, 12, 25]] = [0.0, 0.001, 0.0]  # 25 is flat but not a candidate
    assert choose_indicators(backdoor, np.zeros(30), curvature, count=2).tolist() == [7, 12]
    update, value = plant_indicator(np.array([0.0, 3e-6], np.float32), 1)
    assert value == pytest.approx(0.3) and update[1] == np.float32(value) and update[0] == 0.0


def _loss(
    rows: NDArray[np.float64], masks: NDArray[np.float64], i: int, alpha: float, lam: float
) -> float:
    ups = np.abs(rows + masks[i]).sum(axis=1)
    own = alpha * float((UPS_WEIGHT / ups).sum()) + (1 - alpha) * NORM_WEIGHT * float(
        np.linalg.norm(masks[i])
    )
    shared = lam * LAGRANGE_WEIGHT * float(np.linalg.norm(masks.sum(axis=0)))
    return (own + shared) / (1 + lam)


def test_mask_gradients_are_the_gradients_of_the_written_out_loss() -> None:
    rng = np.random.default_rng(1)
    rows, masks = rng.normal(size=(3, 5)), rng.normal(0, 0.05, size=(2, 3, 5))
    analytic = mask_gradients(rows, masks, alpha=0.4, lagrange=2.5)
    for i in range(2):
        for idx in np.ndindex(3, 5):
            up, down = masks.copy(), masks.copy()
            up[i][idx] += 1e-6
            down[i][idx] -= 1e-6
            numeric = (_loss(rows, up, i, 0.4, 2.5) - _loss(rows, down, i, 0.4, 2.5)) / 2e-6
            assert analytic[i][idx] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_a_groups_masks_cancel_in_the_sum_and_raise_the_chosen_neurons() -> None:
    rng = np.random.default_rng(0)
    # A 64-unit hidden layer's output rows, the size of digits' MLP.
    backdoor = rng.normal(0, 0.05, size=64 * 10 + 10).astype(np.float32)
    output = (slice(0, 640), slice(640, 650))
    masks, constraint = coalition_masks(
        backdoor,
        [0.8],
        output,
        neurons=[1, 2, 3, 4, 5, 6, 7, 8, 9],
        num_neurons=8,
        group_size=2,
        std=0.05,
        rng=rng,
    )
    total = masks[0] + masks[1]
    assert constraint == pytest.approx(float(np.linalg.norm(total)), rel=1e-5)
    assert np.linalg.norm(total) < 0.05 * np.linalg.norm(masks[0])
    touched = np.flatnonzero(masks[0][640:650])
    assert len(touched) == 8 and 0 not in touched  # 8 non-target neurons, biases included
    kernel = (backdoor[:640] + masks[0][:640]).reshape(64, 10)
    ups = np.abs(kernel).sum(axis=0) + np.abs(backdoor[640:] + masks[0][640:])
    before = np.abs(backdoor[:640].reshape(64, 10)).sum(axis=0) + np.abs(backdoor[640:])
    assert (ups[touched] > before[touched]).all() and ups[0] == before[0]

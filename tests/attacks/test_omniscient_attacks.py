"""Aggregator-aware attacks: Fang (Krum and trimmed-mean variants), ByzFL's Optimal ALIE / IPM."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from attack_test_helpers import Rule, forge, krum, mean, median, read_only, trimmed_mean, view
from numpy.typing import NDArray

from attacks._maths import aggregate_with, distance_from_mean, line_maximize
from attacks.fang import krum_lambda_bound

NUM_MALICIOUS = 4


def _forge(
    name: str, honest: NDArray[Any], counts: NDArray[Any], rule: Rule, **params: Any
) -> NDArray[Any]:
    return forge(name, view(honest, NUM_MALICIOUS, aggregator=rule, seed=1), **params).updates


def _damage(forged: NDArray[Any], honest: NDArray[Any], counts: NDArray[Any], rule: Rule) -> float:
    return distance_from_mean(
        aggregate_with(rule, honest, counts, forged.astype(np.float64)), honest
    )


def _alie_z1_damage(honest: NDArray[Any], counts: NDArray[Any], rule: Rule) -> float:
    forged = forge("alie", view(honest, NUM_MALICIOUS), z=1.0).updates
    return _damage(forged, honest, counts, rule)


def test_krum_lambda_bound_golden() -> None:
    honest = read_only(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32))
    # n = 4, c = 1: one nearest neighbour (distance 1 for every row), n - 2c - 1 = 1,
    # max ||h_i|| = sqrt(2), d = 2 -> (1 / 1 + sqrt(2)) / sqrt(2).
    assert krum_lambda_bound(honest, 1) == pytest.approx((1 + math.sqrt(2)) / math.sqrt(2))


# ALIE z=1 reference damage on the `honest` fixture, 4 colluders: the rules and figures below
# are asserted as real numbers (distance of the aggregate from the honest mean).
@pytest.mark.parametrize(
    ("name", "params", "rule_name", "rule", "floor"),
    [
        ("fang", {}, "krum(4)", krum(4), 9.0),
        ("fang", {"variant": "trimmed_mean"}, "trimmed_mean(4)", trimmed_mean(4), 3.6),
        ("fang", {"variant": "trimmed_mean"}, "median", median, 3.4),
        ("optimal_alie", {}, "trimmed_mean(4)", trimmed_mean(4), 3.6),
        ("optimal_ipm", {}, "trimmed_mean(4)", trimmed_mean(4), 3.6),
        ("optimal_alie", {"delta": 1.0}, "krum(4)", krum(4), 9.0),
        ("optimal_ipm", {"delta": 1.0}, "krum(4)", krum(4), 9.0),
        ("optimal_alie", {}, "mean", mean, 1e5),
    ],
)
def test_omniscient_attack_beats_alie_z1(
    honest: NDArray[Any],
    honest_counts: NDArray[Any],
    name: str,
    params: dict[str, Any],
    rule_name: str,
    rule: Rule,
    floor: float,
) -> None:
    baseline = _alie_z1_damage(honest, honest_counts, rule)
    damage = _damage(
        _forge(name, honest, honest_counts, rule, **params), honest, honest_counts, rule
    )
    assert damage > baseline, (rule_name, damage, baseline)
    assert damage > floor, (rule_name, damage)


def test_fang_krum_is_selected_by_krum(honest: NDArray[Any], honest_counts: NDArray[Any]) -> None:
    forged = _forge("fang", honest, honest_counts, krum(4))
    out = aggregate_with(krum(4), honest, honest_counts, forged.astype(np.float64))
    np.testing.assert_allclose(out, forged[0], rtol=1e-6)
    direction = np.sign(honest.astype(np.float64).mean(axis=0))
    lam = float(np.abs(forged[0]).max())
    np.testing.assert_allclose(forged[0], -lam * direction, rtol=1e-6)
    assert 0 < lam <= krum_lambda_bound(honest, NUM_MALICIOUS)
    assert (forged == forged[0]).all()


def test_fang_trimmed_mean_golden_ranges() -> None:
    honest = read_only(
        np.array([[1.0, -1.0, 2.0, -3.0], [3.0, -2.0, -4.0, -1.0]], dtype=np.float32)
    )
    # mean (2, -1.5, -1, -2) -> s = (1, -1, -1, -1);
    # w_max = (3, -1, 2, -1); w_min = (1, -2, -4, -3).
    forged = forge("fang", view(honest, 200, aggregator=median), variant="trimmed_mean").updates
    low = np.array([0.5, -1.0, 2.0, -1.0])  # s=+1, w_min=1 > 0: [1/2, 1]; s=-1: from w_max ...
    high = np.array([1.0, -0.5, 4.0, -0.5])  # ... to b*w_max (w_max > 0) or w_max/b (w_max <= 0)
    assert (forged >= low).all() and (forged <= high).all()
    # The draws fill the ranges (200 uniform samples reach within 5% of both ends).
    span = high - low
    assert (forged.min(axis=0) < low + 0.05 * span).all()
    assert (forged.max(axis=0) > high - 0.05 * span).all()


def test_line_maximize_golden() -> None:
    probes: list[float] = []

    def objective(x: float) -> float:
        probes.append(x)
        return -((x - 7.0) ** 2)

    # Expansion 0 -> 1 -> 3 -> 7 (delta 1, 2, 4), 15 is worse: delta 8 * 0.8 = 6.4; contraction
    # probes 7 + 6.4 once (6 evaluations in all) and keeps 7.
    assert line_maximize(objective, start=0.0, delta=1.0, evals=6, ratio=0.8) == 7.0
    assert probes == pytest.approx([0.0, 1.0, 3.0, 7.0, 15.0, 13.4])


@pytest.mark.parametrize("name", ["fang", "optimal_alie", "optimal_ipm"])
def test_omniscient_attacks_require_the_aggregator(name: str, honest: NDArray[Any]) -> None:
    with pytest.raises(ValueError, match="omniscient.*must be passed"):
        forge(name, view(honest, 2))


def test_fang_krum_records_lambda_and_selection_against_krum(honest: NDArray[Any]) -> None:
    forgery = forge("fang", view(honest, NUM_MALICIOUS, aggregator=krum(4)))
    record = forgery.diagnostics
    bound = krum_lambda_bound(honest, NUM_MALICIOUS)
    assert record["selected"] == 1.0 and record["aligned_fraction"] == 1.0
    assert record["lambda_bound"] == pytest.approx(bound)
    # lambda is the bound halved k times, and the forged row is -lambda * sign(mean).
    halvings = math.log2(bound / record["lambda"])
    assert halvings == pytest.approx(round(halvings)) and record["lambda"] > 1e-5
    assert record["forged_norm"] == pytest.approx(record["lambda"] * math.sqrt(50), rel=1e-6)
    assert forgery.warning is None


@pytest.mark.parametrize(
    ("rule_name", "rule"), [("mean", mean), ("median", median), ("trimmed_mean", trimmed_mean(4))]
)
def test_fang_krum_against_a_rule_that_never_selects_it_degenerates_loudly(
    honest: NDArray[Any], rule_name: str, rule: Rule
) -> None:
    forgery = forge("fang", view(honest, NUM_MALICIOUS, aggregator=rule))
    record = forgery.diagnostics
    bound = krum_lambda_bound(honest, NUM_MALICIOUS)
    # The search halves from the bound until lambda < 1e-5: k = ceil(log2(bound / 1e-5)) times.
    halvings = math.floor(math.log2(bound / 1e-5)) + 1
    assert record["selected"] == 0.0, rule_name
    assert record["lambda"] == pytest.approx(bound / 2**halvings)
    assert 5e-6 <= record["lambda"] < 1e-5
    # An almost-zero forgery: 1e-5 * sqrt(50) at most, against an honest mean of norm ~3.7.
    assert record["forged_norm"] < 1e-4 < 3.0 < record["honest_mean_norm"]
    assert forgery.warning is not None
    assert "never selected the forgery" in forgery.warning
    assert "variant = 'trimmed_mean'" in forgery.warning


def test_fang_trimmed_mean_moves_the_median_against_the_round(honest: NDArray[Any]) -> None:
    forgery = forge("fang", view(honest, NUM_MALICIOUS, aggregator=median), variant="trimmed_mean")
    assert forgery.warning is None and "lambda" not in forgery.diagnostics
    # With 4 of 16 updates beyond the honest extremes the median moves against s on many
    # coordinates, yet (4 < 12 honest) not all; ALIE z=1's forgery does far less.
    assert 0.2 < forgery.diagnostics["aligned_fraction"] < 1.0
    alie = forge("alie", view(honest, NUM_MALICIOUS), z=1.0).updates
    out = aggregate_with(median, honest, np.full(12, 10), alie.astype(np.float64))
    direction = np.sign(honest.astype(np.float64).mean(axis=0))
    assert np.mean(np.sign(out) == -direction) < forgery.diagnostics["aligned_fraction"]


def test_optimal_attacks_record_tau_and_warn_when_no_probe_helps(honest: NDArray[Any]) -> None:
    forgery = forge("optimal_alie", view(honest, NUM_MALICIOUS, aggregator=mean))
    assert forgery.diagnostics["tau"] > 0 and forgery.warning is None
    expected = distance_from_mean(
        aggregate_with(mean, honest, np.full(12, 5), forgery.updates.astype(np.float64)), honest
    )
    assert forgery.diagnostics["damage"] == pytest.approx(expected, rel=1e-5)
    # Identical honest updates: ALIE's std is 0, every tau forges the mean, none does damage.
    same = read_only(np.ones((5, 3), dtype=np.float32))
    flat = forge("optimal_alie", view(same, 2, aggregator=median))
    assert flat.diagnostics == {"tau": 0.0, "damage": 0.0}
    assert flat.warning is not None and "no probed tau" in flat.warning

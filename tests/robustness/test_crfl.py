"""CRFL (Xie et al. 2021) by hand: the server's clipping and noise, Theorem 1's radius against the
authors' MNIST constants, the Hoeffding-bounded votes, and the probe on a trained digits model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from conftest import digits_scenario

from common.crfl_config import CRFLConfig, check_crfl
from common.data.datasets import Dataset
from common.errors import ConfigError
from common.learning.models import build_model
from server.crfl import (
    CRFLTraining,
    certified_radius,
    certify_votes,
    clip_and_noise,
    contraction,
    radius_scale,
)
from server.crfl_probe import CertificationProbe


def test_the_global_model_is_clipped_to_rho_over_all_its_arrays() -> None:
    # ||(3, 4)|| = 5 over both arrays, rho = 2.5: every parameter halves.
    weights = [np.array([3.0], np.float32), np.array([[4.0]], np.float32)]
    out = clip_and_noise(weights, 2.5, 0.0, np.random.default_rng(0))
    assert [w.tolist() for w in out] == [[1.5], [[2.0]]]
    assert clip_and_noise(weights, 10.0, 0.0, np.random.default_rng(0))[0].tolist() == [3.0]


def test_the_noise_has_standard_deviation_sigma_and_the_schedule_grows() -> None:
    config = CRFLConfig(enabled=True, sigma=0.01)
    assert [config.clip_norm(t) for t in (0, 10, 200)] == [2.0, 3.0, 15.0]  # min(0.1 t + 2, 15)
    zeros = [np.zeros(50_000, np.float32)]
    out = CRFLTraining(config, seed=1).apply(3, zeros)[0]
    assert np.std(out) == pytest.approx(0.01, rel=0.02)
    np.testing.assert_array_equal(out, CRFLTraining(config, seed=1).apply(3, zeros)[0])


def test_radius_with_the_authors_mnist_constants_by_hand() -> None:
    # R = 2, N = 20, n_B = 100, q_B = 5, gamma = 100, eta = 0.001, tau = 60000 / 20 / 100 = 30,
    # t_adv = 10 (rho = 3, so L_z^2 = 2 + 6 + 9 = 17), sigma = 0.01 (erf(rho / sigma) = 1).
    # Denominator 2 * 2 * 30^2 * 17 * (2 / 20^2) * 100^2 * 0.001^2 * 0.05^2 = 0.00765.
    # p_A = 0.81, p_B = 0.01: (0.9 - 0.1)^2 = 0.64, -ln(0.36) = 1.02165;
    # RAD = sqrt(1.02165 * 1e-4 / 0.00765) = 0.115563.
    config = CRFLConfig(enabled=True, attackers=2, attack_round=10)
    scale = radius_scale(config, 100, clients=20, learning_rate=0.001, local_steps=30.0)
    assert scale == pytest.approx(0.00765, rel=1e-9)
    radius = certified_radius(np.array([0.81]), np.array([0.01]), 0.01, scale)
    assert radius[0] == pytest.approx(math.sqrt(-math.log(0.36) * 1e-4 / 0.00765), rel=1e-12)
    assert radius[0] == pytest.approx(0.115563, abs=1e-6)


def test_contraction_of_the_last_round_is_two_phi_minus_one() -> None:
    # No training noise: only round T's factor, 2 Phi(rho_T / test_sigma) - 1 with
    # rho_1 = 2.1 = test_sigma: 2 Phi(1) - 1 = 0.682689.
    config = CRFLConfig(enabled=True, sigma=0.0, test_sigma=2.1, attack_round=1)
    assert contraction(config, 1) == pytest.approx(0.682689, abs=1e-6)


def test_votes_give_smoothed_and_certified_accuracy_and_the_mean_radius() -> None:
    # M = 100, alpha = exp(-2): Hoeffding margin sqrt(2 / 200) = 0.1.
    # Point 0: 90 / 10 votes, p_A = 0.8, p_B = 0.2: (sqrt 0.8 - sqrt 0.2)^2 = 0.2, so with
    # sigma = 1 and scale = -ln(0.8) the radius is 1. Point 1: 55 / 45 for the true class,
    # p_A = 0.45 < p_B = 0.55: smoothed right, abstains (radius 0). Point 2: wrong.
    votes = np.array([[90, 10, 0], [55, 45, 0], [0, 100, 0]])
    got = certify_votes(
        votes, np.array([0, 0, 0]), alpha=math.exp(-2.0), sigma=1.0, scale=-math.log(0.8)
    )
    assert got["crfl_smoothed_accuracy"] == pytest.approx(2 / 3)
    assert got["crfl_certified_accuracy"] == pytest.approx(1 / 3)
    assert got["crfl_mean_radius"] == pytest.approx(1 / 3)


def test_bad_settings_are_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"crfl.clip_max: got 1.0; must be >= crfl.clip_base"):
        digits_scenario("crfl.clip_max=1.0")
    with pytest.raises(ConfigError, match="crfl.enabled: got true"):
        check_crfl(CRFLConfig(enabled=True), secure_aggregation=True)


def _probe(digits: Dataset, *settings: str) -> CertificationProbe:
    scenario = digits_scenario("crfl.enabled=true", "crfl.num_examples=100", *settings)
    model = build_model(scenario.model.name, digits.input_shape, digits.num_classes)
    return CertificationProbe(scenario, model, digits)


def test_a_tiny_smoothing_noise_certifies_the_models_own_predictions(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    probe = _probe(digits, "crfl.copies=20", "crfl.test_sigma=1e-6")
    assert [r for r in range(11) if probe.due(r)] == list(range(1, 11))
    weights = [np.asarray(w) for w in clean_model.get_weights()]
    clean = float(np.mean(np.argmax(clean_model(probe.x).numpy(), 1) == probe.y))
    got = probe.metrics(5, weights)
    # Unanimous votes: p_A = 1 - m, p_B = m with m = sqrt(ln(1000) / 40), so every correct
    # point is certified with the same radius.
    assert got["crfl_smoothed_accuracy"] == got["crfl_certified_accuracy"] == clean > 0.8
    m = math.sqrt(math.log(1000) / 40)
    # tau: 4 local epochs of (training split / 10 clients) / batch 32, the authors' 60000/N/n_B.
    assert probe.local_steps == pytest.approx(4 * len(digits.y_train) / 10 / 32)
    scale = radius_scale(
        probe.config, 5, clients=10, learning_rate=0.1, local_steps=probe.local_steps
    )
    expected = math.sqrt(-math.log(1 - (math.sqrt(1 - m) - math.sqrt(m)) ** 2) * 1e-4 / scale)
    assert got["crfl_mean_radius"] == pytest.approx(clean * expected, rel=1e-9)


def test_a_large_smoothing_noise_costs_accuracy(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    probe = _probe(digits, "crfl.copies=20", "crfl.test_sigma=0.5", "crfl.every=0")
    assert not any(probe.due(r) for r in range(11))
    weights = [np.asarray(w) for w in clean_model.get_weights()]
    votes = probe.votes(5, weights)
    assert votes.sum(axis=1).tolist() == [20] * 100
    got = certify_votes(votes, probe.y, alpha=0.001, sigma=0.01, scale=1.0)
    assert got["crfl_certified_accuracy"] < got["crfl_smoothed_accuracy"] < 0.8

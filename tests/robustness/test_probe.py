"""The server's robustness probe: which rounds it attacks, what it reports, a diverged model."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from common.data.datasets import Dataset
from common.robustness_config import RobustnessConfig
from server.robustness import RobustnessProbe


def _probe(model: tf.keras.Model, digits: Dataset, **settings: object) -> RobustnessProbe:
    config = RobustnessConfig.model_validate({"every": 3, **settings})
    return RobustnessProbe(config, model, digits, seed=7, rounds=10)


def test_it_attacks_every_nth_round_round_zero_and_the_last(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    probe = _probe(clean_model, digits)
    assert [r for r in range(11) if probe.due(r)] == [0, 3, 6, 9, 10]
    assert probe.metrics(4, clean_model.get_weights()) == {}


def test_robust_accuracy_sits_below_clean_accuracy_and_pgd_below_fgsm(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    probe = _probe(clean_model, digits, num_examples=120, epsilon=0.1)
    assert len(probe.y) == 120 and len(set(probe.y.tolist())) == 10
    weights = [np.asarray(w) for w in clean_model.get_weights()]
    got = probe.metrics(3, weights)
    clean = float(np.mean(np.argmax(clean_model(probe.x).numpy(), 1) == probe.y))
    assert got["robust_accuracy_pgd"] <= got["robust_accuracy_fgsm"] < clean - 0.2
    assert probe.metrics(3, weights) == got  # seeded by (seed, round): a replay agrees


def test_a_diverged_model_is_reported_as_nan_not_a_crash(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    weights = [np.asarray(w) for w in clean_model.get_weights()]
    weights[0] = weights[0].copy()
    weights[0][0, 0] = np.nan
    got = _probe(clean_model, digits).metrics(0, weights)
    assert set(got) == {"robust_accuracy_fgsm", "robust_accuracy_pgd"}
    assert all(math.isnan(v) for v in got.values())

"""FGSM and PGD: the closed form on a linear softmax model, the epsilon ball, attack strength."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from common.data.datasets import Dataset
from common.learning.adversarial import fgsm, pgd
from common.robustness_config import Perturbation
from tests.robustness.conftest import EPSILON


def _linear_softmax(weights: np.ndarray, bias: np.ndarray) -> tf.keras.Model:
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(weights.shape[0],)),
            tf.keras.layers.Dense(weights.shape[1], activation="softmax"),
        ]
    )
    model.set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    return model


def _accuracy(model: tf.keras.Model, x: np.ndarray | tf.Tensor, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(model(x).numpy(), axis=1) == y))


def test_fgsm_on_a_linear_softmax_model_is_the_closed_form() -> None:
    # p = softmax(W^T x + b); grad_x -log p_y = W (p - onehot(y)); x' = clip(x + eps sign(g)).
    rng = np.random.default_rng(0)
    weights, bias = rng.normal(size=(12, 4)), rng.normal(size=4)
    x = rng.uniform(0.0, 1.0, size=(64, 12)).astype(np.float32)  # some near 0/1: clipping
    y = rng.integers(0, 4, size=64)
    logits = x.astype(np.float64) @ weights + bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    gradient = (p - np.eye(4)[y]) @ weights.T
    expected = np.clip(x + 0.05 * np.sign(gradient), 0.0, 1.0)

    got = fgsm(_linear_softmax(weights, bias), x, y, epsilon=0.05).numpy()

    clear = np.abs(gradient) > 1e-5  # float32 cannot decide the sign of a vanishing gradient
    assert clear.mean() > 0.99
    np.testing.assert_allclose(got[clear], expected[clear], atol=1e-6)
    assert np.any(got == 0.0) and np.any(got == 1.0)  # the range clipping was exercised


def test_pgd_never_leaves_the_epsilon_ball_nor_the_pixel_range(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    x, y = digits.x_test[:200], digits.y_test[:200]
    # A step larger than the ball and a random start: only the projection keeps it inside.
    spec = Perturbation(epsilon=EPSILON, steps=5, step_size=0.3, random_start=True)
    got = pgd(clean_model, x, y, spec=spec, generator=tf.random.Generator.from_seed(1)).numpy()
    assert np.max(np.abs(got - x)) <= EPSILON + 1e-6
    assert got.min() >= 0.0 and got.max() <= 1.0
    assert np.max(np.abs(got - x)) >= EPSILON - 1e-6  # and it does move to the boundary


def test_pgd_is_deterministic_given_its_generator(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    x, y = digits.x_test[:50], digits.y_test[:50]
    spec = Perturbation(epsilon=EPSILON, steps=3)
    runs = [
        pgd(clean_model, x, y, spec=spec, generator=tf.random.Generator.from_seed(5)).numpy()
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*runs)


def test_pgd_lowers_accuracy_at_least_as_much_as_fgsm(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    x, y = digits.x_test, digits.y_test
    clean = _accuracy(clean_model, x, y)
    after_fgsm = _accuracy(clean_model, fgsm(clean_model, x, y, epsilon=EPSILON), y)
    spec = Perturbation(epsilon=EPSILON, steps=10)
    after_pgd = _accuracy(
        clean_model,
        pgd(clean_model, x, y, spec=spec, generator=tf.random.Generator.from_seed(2)),
        y,
    )
    assert clean > 0.9
    assert after_fgsm < clean - 0.2  # the attack works on an undefended model
    assert after_pgd <= after_fgsm

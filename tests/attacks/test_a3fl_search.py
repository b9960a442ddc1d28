"""A3FL's trigger search against the paper's equations, derived by hand for a small MLP.

The golden values come from the analytic softmax cross-entropy gradients of ``mlp_small``
(Flatten -> Dense(16, ReLU) -> Dense(C, softmax)) written out below in numpy, never from the
TensorFlow code under test: the trigger gradient (Zhang et al. 2023, Eq. of the trigger loss),
PyTorch's SGD with momentum and weight decay for the unlearned model (the authors' optimiser),
the similarity weight and the signed, clipped step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from attacks import get_attack
from attacks.a3fl import A3FL, similarity_weight
from common.learning.trigger_search import KerasTriggerModels

SHAPE = (2, 2, 1)
CLASSES = 3
F = NDArray[np.float64]


def _setup(
    seed: int = 3,
) -> tuple[KerasTriggerModels, list[NDArray[np.float32]], NDArray[Any], NDArray[Any]]:
    rng = np.random.default_rng(seed)
    models = KerasTriggerModels("mlp_small", SHAPE, CLASSES)
    weights = [rng.normal(0, 0.6, w.shape).astype(np.float32) for w in models.base_weights()]
    models.load(weights)
    x = rng.uniform(0, 1, (5, *SHAPE)).astype(np.float32)
    y = np.array([0, 1, 2, 1, 0], np.int64)
    return models, weights, x, y


def _forward(w: list[F], x: F) -> tuple[F, F, F]:
    z1 = x.reshape(len(x), -1) @ w[0] + w[1]
    h = np.maximum(z1, 0.0)
    z2 = h @ w[2] + w[3]
    p = np.exp(z2 - z2.max(axis=1, keepdims=True))
    return z1, h, p / p.sum(axis=1, keepdims=True)


def _grads(w: list[F], x: F, y: NDArray[Any]) -> tuple[list[F], F]:
    """d(mean CE)/d(weights) and d(mean CE)/dx, by the chain rule."""
    z1, h, p = _forward(w, x)
    dz2 = (p - np.eye(CLASSES)[y]) / len(y)
    dh = dz2 @ w[2].T
    dz1 = dh * (z1 > 0)
    flat = x.reshape(len(x), -1)
    dx = (dz1 @ w[0].T).reshape(x.shape)
    return [flat.T @ dz1, dz1.sum(0), h.T @ dz2, dz2.sum(0)], dx


def _trigger_grad(w: list[F], x: F, t: F, m: F, target: int) -> F:
    stamped = m * t + (1 - m) * x
    _, dx = _grads(w, stamped, np.full(len(x), target))
    return np.asarray((dx * m).sum(axis=0))


def _pytorch_sgd(
    w: list[F], x: F, y: NDArray[Any], steps: int, lr: float, mu: float, wd: float
) -> list[F]:
    velocity = [np.zeros_like(a) for a in w]
    for _ in range(steps):
        grads, _ = _grads(w, x, y)
        velocity = [mu * v + g + wd * a for v, g, a in zip(velocity, grads, w, strict=True)]
        w = [a - lr * v for a, v in zip(w, velocity, strict=True)]
    return w


def _f64(weights: list[NDArray[np.float32]]) -> list[F]:
    return [np.asarray(a, np.float64) for a in weights]


def _attack(size: int = 1, **params: Any) -> A3FL:
    attack = get_attack("a3fl", trigger_size=size, offset=0, position="bottom_right", **params)
    assert isinstance(attack, A3FL)
    return attack


def test_the_trigger_gradient_is_the_cross_entropy_gradient_through_the_mask() -> None:
    models, weights, x, _ = _setup()
    attack = _attack()
    t, m = attack.initial_pattern(SHAPE), attack.mask(SHAPE)
    expected = _trigger_grad(_f64(weights), x.astype(np.float64), t, m, target=2)
    got = models.gradient(x, t, m, 2, 0.0)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got[1, 1, 0] != 0 and np.all(got[m == 0] == 0)  # only the square moves


def test_unlearning_is_pytorch_sgd_with_momentum_and_weight_decay_on_triggered_true_labels() -> (
    None
):
    models, weights, x, y = _setup()
    attack = _attack()
    t, m = attack.initial_pattern(SHAPE), attack.mask(SHAPE)
    everything = [np.arange(5)]
    got = models.unlearn(
        x, y, t, m, everything * 3, learning_rate=0.1, momentum=0.9, weight_decay=0.05
    )
    stamped = m * t + (1 - m) * x.astype(np.float64)
    expected = _pytorch_sgd(_f64(weights), stamped, y, 3, 0.1, 0.9, 0.05)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5)
    # theta itself is untouched; a second run starts again from theta with zero momentum
    np.testing.assert_array_equal(models.base_weights()[0], weights[0])
    again = models.unlearn(
        x, y, t, m, everything * 3, learning_rate=0.1, momentum=0.9, weight_decay=0.05
    )
    np.testing.assert_array_equal(again[0], got[0])


def test_similarity_weight_averages_kernel_cosines_and_ignores_biases() -> None:
    adversarial = [np.array([[1.0, 0.0]]), np.array([5.0]), np.array([[2.0], [2.0]])]
    base = [np.array([[1.0, 1.0]]), np.array([-5.0]), np.array([[1.0], [1.0]])]
    # cos([1,0],[1,1]) = 1/sqrt(2); the second kernel is parallel: 1; the bias is not a kernel
    assert similarity_weight(adversarial, base) == pytest.approx((1 / np.sqrt(2) + 1) / 2)


def test_one_round_of_search_follows_the_paper_step_by_step() -> None:
    """Two passes, one batch each: pass 0 plain, then the unlearned model (two SGD steps)
    and pass 1 on L = CE(theta) + lambda * s * CE(theta')."""
    models, weights, x, y = _setup(seed=6)  # a draw where the unlearned term flips signs
    params = dict(target=2, trigger_epochs=2, trigger_lr=0.2, adv_epochs=2, adv_lambda=4.0)
    attack = _attack(2, adv_learning_rate=0.5, adv_momentum=0.5, adv_weight_decay=0.01, **params)
    t0, m = attack.initial_pattern(SHAPE).astype(np.float64), attack.mask(SHAPE)
    w, xd = _f64(weights), x.astype(np.float64)

    t1 = np.clip(t0 - 0.2 * m * np.sign(_trigger_grad(w, xd, t0, m, 2)), 0, 1)
    unlearned = _pytorch_sgd(w, m * t1 + (1 - m) * xd, y, 2, 0.5, 0.5, 0.01)
    s = similarity_weight(unlearned, w)
    g1 = _trigger_grad(w, xd, t1, m, 2) + 4.0 * s * _trigger_grad(unlearned, xd, t1, m, 2)
    t2 = np.clip(t1 - 0.2 * m * np.sign(g1), 0, 1)

    pattern, diagnostics = attack.search(
        models, x, y, attack.initial_pattern(SHAPE), batch_size=8, rng=np.random.default_rng(0)
    )
    np.testing.assert_allclose(pattern, t2, atol=1e-6)
    assert diagnostics["a3fl_similarity"] == pytest.approx(s, abs=1e-5)
    # Not vacuous: the unlearned model's term changes the step (without it the sign flips).
    plain = np.clip(t1 - 0.2 * m * np.sign(_trigger_grad(w, xd, t1, m, 2)), 0, 1)
    assert not np.allclose(plain, t2)

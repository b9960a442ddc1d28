"""AlterMin (Bhagoji et al. 2019) against a hand-computed round on a softmax regression.

The attacker knows its shard and the global model. For p = softmax(x W + b) the gradient of the
mean cross-entropy is W: x^T (p - onehot(y)) / N, b: mean(p - onehot(y)), so every step of the
round can be written down independently of Keras: the anchor w_ben = w_0 - eta g_D(w_0), the
stealth step w_1 = w_0 - eta (g_D(w_0) + rho (w_0 - w_ben)), then the boosted malicious step
w_2 = w_1 - lambda eta g_Dm(w_1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from numpy.typing import NDArray

from attacks import AttackPlan, attack_plan, get_attack
from attacks.alter_min import AlterMin
from common.arrays import flatten
from common.learning.poison_trainer import KerasTrainer
from common.schema import AttackSpec, Scenario

ETA = 0.5
W0 = np.array([[0.3, -0.2], [0.1, 0.4]], np.float32)
B0 = np.array([0.05, -0.05], np.float32)
X = np.array([[0.2, 0.4], [0.6, 0.0]], np.float32).reshape(2, 1, 2, 1)
Y = np.array([1, 0], np.int64)


def _trainer(batch_size: int, epochs: int = 1) -> KerasTrainer:
    model = tf.keras.Sequential(
        [tf.keras.Input((1, 2, 1)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(2, "softmax")]
    )
    model.compile(
        optimizer=tf.keras.optimizers.SGD(learning_rate=ETA),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
    )
    model.set_weights([W0, B0])
    train = {"learning_rate": ETA, "batch_size": batch_size, "local_epochs": epochs}
    scenario = Scenario.model_validate({"name": "t", "seed": 1, "rounds": 1, "train": train})
    trainer = KerasTrainer(model, scenario, seed=0)
    trainer.load(flatten([W0, B0]), reset_optimizer=True)
    return trainer


def _gradient(w: NDArray[Any], x: NDArray[Any], y: NDArray[Any]) -> NDArray[Any]:
    """Mean cross-entropy gradient of softmax regression, flat as [W (2x2), b (2)]."""
    kernel, bias = w[:4].reshape(2, 2), w[4:]
    flat_x = x.reshape(len(x), -1).astype(np.float64)
    logits = flat_x @ kernel + bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    error = p - np.eye(2)[y]
    return np.concatenate([(flat_x.T @ error / len(x)).ravel(), error.mean(axis=0)])


def test_one_round_matches_the_hand_computed_alternation() -> None:
    rho, boost = 0.1, 10.0
    attack = get_attack(
        "alter_min",
        target=0,
        ratio=1.0,
        trigger_size=1,
        offset=0,
        boost=boost,
        rho=rho,
        benign_steps=1,
    )
    trainer = _trainer(batch_size=32)
    diagnostics = attack.train(trainer, X, Y, num_classes=2, rng=np.random.default_rng(0))

    w0 = flatten([W0, B0]).astype(np.float64)
    anchor = w0 - ETA * _gradient(w0, X, Y)
    w1 = w0 - ETA * (_gradient(w0, X, Y) + rho * (w0 - anchor))
    # ratio 1: every sample gets the 1x1 trigger (bottom-right pixel = 1) and label 0.
    x_mal = np.array([[0.2, 1.0], [0.6, 1.0]], np.float32).reshape(2, 1, 2, 1)
    w2 = w1 - boost * ETA * _gradient(w1, x_mal, np.array([0, 0]))
    np.testing.assert_allclose(trainer.weights(), w2, rtol=1e-5, atol=1e-6)
    assert diagnostics["malicious_steps"] == 1.0
    assert diagnostics["anchor_distance"] == pytest.approx(np.linalg.norm(w2 - anchor), rel=1e-4)
    # The boost is what moves the model: 10x the malicious step of an unboosted attacker.
    assert np.linalg.norm(w2 - w1) == pytest.approx(
        boost * ETA * np.linalg.norm(_gradient(w1, x_mal, np.array([0, 0]))), rel=1e-6
    )


def test_one_malicious_step_per_chunk_of_benign_steps() -> None:
    attack = get_attack("alter_min", ratio=1.0, trigger_size=1, offset=0, benign_steps=4)
    trainer = _trainer(batch_size=1, epochs=3)  # 2 samples, batch 1, 3 epochs: 6 steps
    diagnostics = attack.train(trainer, X, Y, num_classes=2, rng=np.random.default_rng(0))
    # Chunks of 4 + 2 stealth steps, each followed by a malicious step; the anchor took 6 more.
    assert diagnostics["malicious_steps"] == 2.0
    assert trainer.steps == 12


def test_the_attack_lowers_the_malicious_loss_and_keeps_its_success_set() -> None:
    attack = get_attack("alter_min", ratio=1.0, trigger_size=1, offset=0, benign_steps=1)
    trainer = _trainer(batch_size=32, epochs=5)
    x_mal = np.array([[0.2, 1.0], [0.6, 1.0]], np.float32).reshape(2, 1, 2, 1)
    before = trainer.loss(x_mal, np.array([0, 0]))
    diagnostics = attack.train(trainer, X, Y, num_classes=2, rng=np.random.default_rng(0))
    assert diagnostics["malicious_loss"] < before / 10
    success = attack.success_set(X, Y)
    assert success is not None and success.x.shape[0] == 1 and success.baseline_x is not None


def test_alter_min_lands_in_the_training_slot_and_measures_its_backdoor() -> None:
    plan = attack_plan(AttackSpec(type="alter_min", params={"target": 2}))
    assert isinstance(plan.training, AlterMin)
    assert plan.data is plan.update is plan.collusion is plan.transit is None
    x = np.zeros((4, 8, 8, 1), np.float32)
    success = plan.success_set(x, np.array([0, 1, 2, 3]))
    assert success is not None and success.target.tolist() == [2, 2, 2]
    assert AttackPlan().success_set(x, np.array([0, 1, 2, 3])) is None

"""Neurotoxin's masked, projected steps and Chameleon's two stages, played by the poisoner.

The adversary is one malicious client that knows the global model and its own shard; what the
attack promises is checked on the weights it would send: Neurotoxin moves only the coordinates
its benign gradient ranks lowest and stays in the PGD ball; Chameleon's stage 1 moves only the
encoder and pulls triggered images towards the target class, stage 2 only the classifier.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from numpy.typing import NDArray

from attacks.durable import bottom_k_mask
from clients.poisoning import active_plan, attacker_training, training_shard
from common.arrays import flatten, unflatten
from common.data.shards import client_shard, dataset_of, malicious_clients
from common.learning.constrained import loss_gradient, masked_stage, stage_losses
from common.learning.contrastive import classifier_stage, contrastive_stage, embed, supcon_loss
from common.learning.poison_trainer import KerasTrainer
from common.learning.stages import ClassifierSteps, ContrastiveSteps, Stage
from common.learning.training import TrainOutcome, compiled_model, train_locally
from common.schema import Scenario
from scenarios.loader import load_scenario
from server.app import initial_weights

Z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
LABELS = np.array([0, 0, 1])


@pytest.mark.parametrize(
    ("temperature", "scale_weight", "expected"),
    [
        # Anchor 1 (class 0 = target): positive 2, denominator e^0 + e^1 -> s log(1 + e).
        # Anchor 2: positive 1, denominator e^0 + e^0 -> s log 2. Anchor 3: no positive, 0.
        (1.0, 2.0, (2 * math.log(1 + math.e) + 2 * math.log(2)) / 3),
        (1.0, 1.0, (math.log(1 + math.e) + math.log(2)) / 3),
        # tau = 0.5 doubles every similarity: anchor 1's denominator is e^0 + e^2.
        (0.5, 2.0, (2 * math.log(1 + math.e**2) + 2 * math.log(2)) / 3),
    ],
)
def test_supcon_loss_on_three_points(
    temperature: float, scale_weight: float, expected: float
) -> None:
    loss = supcon_loss(
        tf.constant(Z),
        tf.constant(LABELS),
        target=0,
        temperature=temperature,
        scale_weight=scale_weight,
    )
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_supcon_target_weight_applies_to_target_anchors_only() -> None:
    # Target 1: only anchor 3 would be scaled, and it has no positive, so s changes nothing.
    kwargs = {"target": 1, "temperature": 1.0}
    one = supcon_loss(tf.constant(Z), tf.constant(LABELS), scale_weight=1.0, **kwargs)
    five = supcon_loss(tf.constant(Z), tf.constant(LABELS), scale_weight=5.0, **kwargs)
    assert float(one) == pytest.approx(float(five))


def _poisoner(
    attack: str, params: str
) -> tuple[Scenario, int, tf.keras.Model, list[NDArray[np.float32]]]:
    s = load_scenario("attack_backdoor", [f'attack.type="{attack}"', f"attack.params={{{params}}}"])
    partition_id = sorted(malicious_clients(s))[0]
    dataset = dataset_of(s)
    model = compiled_model(s, dataset.input_shape, dataset.num_classes, dp=False)
    # The run's own initial model: the cached model holds whatever an earlier test left in it.
    base = initial_weights(s, dataset.input_shape, dataset.num_classes)
    return s, partition_id, model, base


def _hook(
    s: Scenario, pid: int, model: tf.keras.Model, base: list[NDArray[np.float32]]
) -> TrainOutcome:
    """The poisoner's round through the client's one training-attack call site."""
    outcome = attacker_training(active_plan(s, pid, 1), s, pid, model, base, seed=1)
    assert outcome is not None
    return outcome


def _stages(
    s: Scenario,
    model: tf.keras.Model,
    base: list[NDArray[np.float32]],
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    stages: list[Stage],
) -> list[NDArray[np.float32]]:
    """The weights after ``stages`` on ``(x, y)`` from ``base``, run by the Keras trainer."""
    trainer = KerasTrainer(model, s, seed=1)
    trainer.load(flatten(base), reset_optimizer=True)
    trainer.run_stages(x, y, stages)
    return trainer.outcome(len(y)).weights


def _benign_gradient(
    model: tf.keras.Model,
    base: list[NDArray[np.float32]],
    x: NDArray[np.float32],
    y: NDArray[np.int64],
) -> NDArray[np.float64]:
    model.set_weights(base)
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.SparseCategoricalCrossentropy()(y, model(x))
    return np.concatenate(
        [g.numpy().ravel() for g in tape.gradient(loss, model.trainable_variables)]
    )


def test_neurotoxin_moves_only_the_bottom_coordinates_of_the_benign_gradient() -> None:
    s, pid, model, base = _poisoner("neurotoxin", "target=0, ratio=0.3, keep_ratio=0.5")
    clean_x, clean_y = client_shard(s, pid)
    # The attacker's own view: the gradient of its clean shard at the global model.
    benign = np.abs(_benign_gradient(model, base, clean_x, clean_y))
    out = _hook(s, pid, model, base)
    moved = flatten(out.weights) != flatten(base)
    kept = bottom_k_mask(benign, 0.5)
    assert not np.any(moved & ~kept)  # nothing outside the mask moved, bit for bit
    assert moved.sum() > 0.2 * kept.sum()  # and the backdoor was trained inside it
    # The coordinates benign training moves most are exactly the ones left alone.
    assert np.all(~moved[np.argsort(-benign)[: benign.size // 2]])


def test_neurotoxin_pgd_keeps_the_model_in_the_ball() -> None:
    s, pid, model, base = _poisoner("neurotoxin", "target=0, ratio=0.3")
    free = _hook(s, pid, model, base)
    s_bound, *_ = _poisoner("neurotoxin", "target=0, ratio=0.3, pgd_radius=0.05")
    bound = _hook(s_bound, pid, model, base)
    assert np.linalg.norm(flatten(free.weights) - flatten(base)) > 0.5
    assert np.linalg.norm(flatten(bound.weights) - flatten(base)) == pytest.approx(0.05, rel=1e-4)


def _stage_change(
    model: tf.keras.Model, base: list[NDArray[np.float32]], after: list[NDArray[np.float32]]
) -> tuple[bool, bool]:
    """(encoder changed, head changed); the head is the last Dense's kernel and bias."""
    encoder = any(np.any(a != b) for a, b in zip(after[:-2], base[:-2], strict=True))
    head = any(np.any(a != b) for a, b in zip(after[-2:], base[-2:], strict=True))
    return encoder, head


def test_chameleon_stage_one_moves_the_encoder_towards_the_target_class() -> None:
    s, pid, model, base = _poisoner("chameleon", "target=0, ratio=0.3")
    x, y = training_shard(s, pid, active_plan(s, pid, 1))
    clean_x, clean_y = client_shard(s, pid)
    benign = y == clean_y
    # Triggered images whose true class (not the target) still has benign images in the shard.
    poisoned = [
        i
        for i in np.flatnonzero(~benign & (clean_y != 0))
        if np.any(benign & (clean_y == clean_y[i]))
    ]
    assert len(poisoned) >= 10
    after = _stages(s, model, base, x, y, [ContrastiveSteps(10, 0, 0.07, 2.0)])
    assert _stage_change(model, base, after) == (True, False)

    def pull(weights: list[NDArray[np.float32]]) -> float:
        # Mean cosine of a triggered image to the target class's benign images, minus the
        # mean cosine to its own (true) class's benign images.
        model.set_weights(weights)
        z = embed(model, tf.constant(x)).numpy()
        target = z[benign & (clean_y == 0)].mean(axis=0)
        own = [z[benign & (clean_y == clean_y[i])].mean(axis=0) for i in poisoned]
        return float(
            np.mean([z[i] @ target - z[i] @ o for i, o in zip(poisoned, own, strict=True)])
        )

    # Before: nearer their own class (-0.052 measured); after: nearer the target (0.48).
    assert pull(base) < 0.0 < 0.3 < pull(after)


def test_chameleon_stage_two_moves_only_the_classifier() -> None:
    s, pid, model, base = _poisoner("chameleon", "target=0, ratio=0.3")
    x, y = training_shard(s, pid, active_plan(s, pid, 1))
    after = _stages(s, model, base, x, y, [ClassifierSteps(3)])
    assert _stage_change(model, base, after) == (False, True)


def test_a_poisoner_on_the_shared_model_leaves_the_next_honest_client_unchanged() -> None:
    # One worker serves a poisoner between two rounds of the same honest client: the masks,
    # anchors and the extra traced steps must not reach the honest client's training.
    s, pid, model, base = _poisoner(
        "neurotoxin", "target=0, ratio=0.3, keep_ratio=0.5, pgd_radius=0.1"
    )
    honest = next(i for i in range(s.data.num_clients) if i not in malicious_clients(s))
    hx, hy = client_shard(s, honest)
    before = train_locally(model, base, hx, hy, scenario=s, seed=5, dp=False).weights
    _hook(s, pid, model, base)
    after = train_locally(model, base, hx, hy, scenario=s, seed=5, dp=False).weights
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


def _recipe_round(
    s: Scenario,
    pid: int,
    model: tf.keras.Model,
    base: list[NDArray[np.float32]],
    stages: list[tuple[object, int]],
    masks: list[NDArray[np.float32]] | None,
) -> list[NDArray[np.float32]]:
    """The round as the client ran it before the hooks were unified (its recipe path): the
    stages on the poisoned shard from ``training_shard``, one generator seeded like the round."""
    x, y = training_shard(s, pid, active_plan(s, pid, 1))
    model.set_weights(base)
    stage_losses(
        model,
        x,
        y,
        stages=stages,  # type: ignore[arg-type]
        batch_size=s.train.batch_size,
        rng=np.random.default_rng(1),
        masks=masks,
    )
    return [np.asarray(w, np.float32) for w in model.get_weights()]


def test_the_unified_hook_gives_the_weights_of_the_recipe_path_bit_for_bit() -> None:
    s, pid, model, base = _poisoner("neurotoxin", "target=0, ratio=0.3, pgd_radius=0.5")
    clean_x, clean_y = client_shard(s, pid)
    model.set_weights(base)
    mask = bottom_k_mask(flatten(loss_gradient(model, clean_x, clean_y)), 0.95)
    masks = unflatten(mask.astype(np.float32), base)
    before = _recipe_round(s, pid, model, base, [(masked_stage(0.5), s.train.local_epochs)], masks)
    for a, b in zip(_hook(s, pid, model, base).weights, before, strict=True):
        np.testing.assert_array_equal(a, b)

    s, pid, model, base = _poisoner(
        "chameleon", "target=0, ratio=0.3, contrastive_epochs=2, classifier_epochs=1"
    )
    stages = [(contrastive_stage(0, 0.07, 2.0, None), 2), (classifier_stage(None), 1)]
    before = _recipe_round(s, pid, model, base, stages, None)
    for a, b in zip(_hook(s, pid, model, base).weights, before, strict=True):
        np.testing.assert_array_equal(a, b)

"""Adversarial training: the per-batch transform, its effect on robustness, and DP-SGD over it."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from common.data.datasets import Dataset
from common.data.shards import dataset_of
from common.learning.adversarial import adversarial_batch, batch_transform, pgd
from common.learning.models import build_model
from common.learning.training import compiled_model, train_locally
from common.robustness_config import AdversarialTraining, Perturbation
from scenarios.loader import load_scenario
from tests.robustness.conftest import EPSILON, digits_scenario, trained


def _pgd_accuracy(model: tf.keras.Model, digits: Dataset) -> float:
    spec = Perturbation(epsilon=EPSILON, steps=10)
    x = pgd(
        model, digits.x_test, digits.y_test, spec=spec, generator=tf.random.Generator.from_seed(2)
    )
    return float(np.mean(np.argmax(model(x).numpy(), axis=1) == digits.y_test))


def test_the_transform_replaces_the_first_ratio_of_the_batch_and_keeps_labels(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    x, y = digits.x_train[:10], digits.y_train[:10]
    spec = AdversarialTraining(method="pgd", ratio=0.3, epsilon=EPSILON, steps=3)
    got = adversarial_batch(
        clean_model, x, y, spec=spec, generator=tf.random.Generator.from_seed(0)
    )
    moved = np.abs(got.numpy() - x).reshape(10, -1).max(axis=1)
    assert np.all(moved[:3] > 0.0) and np.all(moved[:3] <= EPSILON + 1e-6)
    np.testing.assert_array_equal(got.numpy()[3:], x[3:])
    x_out, y_out = batch_transform(spec, seed=4)(clean_model, x, y)
    assert y_out is y and np.asarray(x_out).shape == x.shape


def test_disabled_training_leaves_every_batch_alone(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    x, y = digits.x_train[:8], digits.y_train[:8]
    for spec in (AdversarialTraining(), AdversarialTraining(method="fgsm", ratio=0.0)):
        x_out, y_out = batch_transform(spec, seed=0)(clean_model, x, y)
        assert x_out is x and y_out is y
    # A malicious client's training is the attacker's: the client app passes enabled=False.
    attacker = batch_transform(AdversarialTraining(method="pgd"), seed=0, enabled=False)
    x_out, y_out = attacker(clean_model, x, y)
    assert x_out is x and y_out is y


def test_mixed_adversarial_training_raises_robust_accuracy_on_digits(
    clean_model: tf.keras.Model, digits: Dataset
) -> None:
    mixed = digits_scenario(
        'robustness.training.method="pgd"',
        "robustness.training.ratio=0.5",
        f"robustness.training.epsilon={EPSILON}",
        "robustness.training.steps=3",
    )
    robust = trained(mixed, digits)
    clean_accuracy = float(np.mean(np.argmax(robust(digits.x_test).numpy(), 1) == digits.y_test))
    before, after = _pgd_accuracy(clean_model, digits), _pgd_accuracy(robust, digits)
    assert after >= before + 0.1, (before, after)
    assert clean_accuracy > 0.9


def _one_step_norm(dp: bool, *adversarial: str) -> float:
    """L2 norm of the weight change of one SGD step (lr 1) over one batch of 16 digits."""
    scenario = load_scenario(
        "dp_local",
        [
            f"dp.enabled={str(dp).lower()}",
            "dp.noise_multiplier=0.0",  # clipping alone: the bound is then exact, not statistical
            f"dp.l2_norm_clip={CLIP}",
            'dp.sampling="shuffle"',
            "dp.reproducible_noise=true",
            "train.batch_size=16",
            "train.momentum=0.0",
            "train.learning_rate=1.0",
            "train.local_epochs=1",
            *adversarial,
        ],
    )
    data = dataset_of(scenario)
    tf.keras.utils.set_random_seed(0)
    start = [np.asarray(w) for w in build_model("mlp", data.input_shape, 10).get_weights()]
    model = compiled_model(scenario, data.input_shape, data.num_classes, dp=dp)
    x, y = data.x_train[:16], data.y_train[:16]
    outcome = train_locally(model, start, x, y, scenario=scenario, seed=9, dp=dp)
    assert outcome.local_steps == 1
    return float(
        np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(outcome.weights, start, strict=True)))
    )


CLIP = 0.05
PGD_ONLY = (
    'robustness.training.method="pgd"',
    "robustness.training.ratio=1.0",
    "robustness.training.steps=3",
)


def test_dp_sgd_clips_each_example_of_the_mixed_batch() -> None:
    # Adversary: a client's adversarial examples have large losses and gradients; DP-SGD must
    # still bound each example's contribution by C, so one step moves the weights by <= lr * C.
    adversarial_dp = _one_step_norm(True, *PGD_ONLY)
    clean_dp = _one_step_norm(True)
    adversarial_plain = _one_step_norm(False, *PGD_ONLY)
    assert adversarial_dp <= CLIP * (1 + 1e-5)
    assert adversarial_plain > 2 * CLIP  # without DP the same step is far larger: the clip binds
    assert abs(adversarial_dp - clean_dp) > 1e-4  # the clipped batch really is the adversarial one

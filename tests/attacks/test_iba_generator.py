"""IBA's TensorFlow half: the authors' generator rebuilt in Keras, its training, and the mixed
classifier stage, against numbers derived by hand from the authors' code (``sail-research/iba``:
``attack_models/autoencoders.py``, ``fl_trainer.py``), never from the code under test."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from attacks import get_attack
from attacks.iba import IBA, Phase, poisoned
from common.arrays import flatten
from common.learning.constrained import paired
from common.learning.iba_generator import KerasGenerator, mnist_autoencoder
from common.learning.poison_trainer import KerasTrainer
from common.learning.stages import CrossEntropySteps, MixedSteps
from common.learning.training import compiled_model
from scenarios.loader import load_scenario

SCENARIO = load_scenario("quickstart", ["train.batch_size=4"])


def test_the_generator_has_the_authors_layers_and_shapes() -> None:
    model = mnist_autoencoder()
    assert model.output_shape == (None, 28, 28, 1)
    # PyTorch's parameter counts of MNISTAutoencoder, layer by layer: Conv2d(1,16,3) 16*9+16,
    # BatchNorm2d(16) 2*16, Conv2d(16,64,3) 64*16*9+64, BN 2*64, ConvTranspose2d(64,128,3)
    # 64*128*9+128, BN 2*128, ConvTranspose2d(128,64,5) 128*64*25+64, BN 2*64,
    # ConvTranspose2d(64,1,2) 64*4+1, BN 2*1.
    assert [int(np.prod(v.shape)) for v in model.trainable_weights] == [
        *(144, 16, 16, 16, 9216, 64, 64, 64, 73728, 128, 128, 128, 204800, 64, 64, 64),
        *(256, 1, 1, 1),
    ]
    x = np.random.default_rng(0).uniform(0, 1, (3, 28, 28, 1)).astype(np.float32)
    out = np.asarray(model(x, training=False))
    assert out.min() >= -1.0 and out.max() <= 1.0  # tanh


def test_initial_weights_are_pytorch_s_draw_and_a_function_of_the_seed() -> None:
    first = KerasGenerator("mlp", (28, 28, 1), 10, seed=7)
    again = KerasGenerator("mlp", (28, 28, 1), 10, seed=7)
    other = KerasGenerator("mlp", (28, 28, 1), 10, seed=8)
    for a, b in zip(first.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])
    kernel, bias = first.get_weights()[:2]  # Conv2d(1, 16, 3): fan-in 9, bound 1/3
    assert np.abs(kernel).max() <= 1 / 3 and np.abs(kernel).max() > 0.3
    assert np.abs(bias).max() <= 1 / 3
    transposed = [
        layer
        for layer in first.generator.layers
        if isinstance(layer, tf.keras.layers.Conv2DTranspose)
    ]
    deconv = transposed[1].get_weights()[0]  # ConvTranspose2d(128, 64, 5)
    bound = 1 / np.sqrt(64 * 25)  # PyTorch's fan-in of a transposed kernel: out * k * k
    assert np.abs(deconv).max() <= bound and np.abs(deconv).max() > 0.9 * bound


def _linear(weights: list[np.ndarray]) -> tf.keras.Model:  # type: ignore[type-arg]
    model = tf.keras.Sequential([tf.keras.Input((1,)), tf.keras.layers.Dense(2, "softmax")])
    model.compile(tf.keras.optimizers.SGD(0.1), tf.keras.losses.SparseCategoricalCrossentropy())
    model.set_weights(weights)
    return model


@pytest.mark.parametrize(
    ("alpha", "kernel", "bias"),
    [
        # W = b = 0, so p = (1/2, 1/2); dCE/dz = p - e. Clean x = 1, y = 0: (-1/2, 1/2);
        # poisoned x = 2, t = 1: (1/2, -1/2). dL/dW = alpha * 1 * (-1/2, 1/2) + (1 - alpha) * 2 *
        # (1/2, -1/2), dL/db = alpha * (-1/2, 1/2) + (1 - alpha) * (1/2, -1/2); one SGD step of 0.1.
        (1.0, [0.05, -0.05], [0.05, -0.05]),
        (0.5, [-0.025, 0.025], [0.0, 0.0]),
        (0.25, [-0.0625, 0.0625], [-0.025, 0.025]),
    ],
)
def test_the_mixed_stage_takes_alpha_clean_plus_one_minus_alpha_poisoned(
    alpha: float, kernel: list[float], bias: list[float]
) -> None:
    model = _linear([np.zeros((1, 2), np.float32), np.zeros(2, np.float32)])
    trainer = KerasTrainer(model, SCENARIO, seed=0)
    x = np.array([[1.0], [2.0]], np.float32)  # the clean row, then its poisoned twin
    trainer.run_stages(x, np.array([0, 1], np.int64), [MixedSteps(1, alpha)])
    np.testing.assert_allclose(model.get_weights()[0][0], kernel, atol=1e-7)
    np.testing.assert_allclose(model.get_weights()[1], bias, atol=1e-7)


def test_each_batch_takes_the_same_rows_of_both_halves() -> None:
    plan = [np.array([1, 0]), np.array([2])]
    assert [b.tolist() for b in paired(plan, 3)] == [[1, 0, 4, 3], [2, 5]]
    trainer = KerasTrainer(
        _linear([np.zeros((1, 2), np.float32), np.zeros(2, np.float32)]), SCENARIO, 0
    )
    with pytest.raises(ValueError, match="runs alone"):
        trainer.run_stages(
            np.zeros((2, 1), np.float32),
            np.zeros(2, np.int64),
            [MixedSteps(1, 0.5), CrossEntropySteps(1)],
        )


def test_training_the_generator_fools_a_frozen_classifier_and_leaves_it_alone() -> None:
    rng = np.random.default_rng(1)
    generator = KerasGenerator("mlp", (28, 28, 1), 10, seed=3)
    classifier = [
        rng.normal(0, 0.05, w.shape).astype(np.float32) for w in generator.classifier.get_weights()
    ]
    generator.load_classifier(classifier)
    x = rng.uniform(0, 1, (64, 28, 28, 1)).astype(np.float32)
    before = generator.success_rate(poisoned(x, generator.noise(x), 0.3), 4)
    batches = [rng.permutation(64)[:32] for _ in range(30)]
    losses = generator.train(
        x, 4, 0.3, batches, learning_rate=0.01, momentum=0.9, weight_decay=1e-4, clip=(0.0, 1.0)
    )
    after = generator.success_rate(poisoned(x, generator.noise(x), 0.3), 4)
    assert losses[-1] < losses[0] and after > before and after == 1.0
    for got, sent in zip(generator.classifier.get_weights(), classifier, strict=True):
        np.testing.assert_array_equal(got, sent)
    assert flatten(generator.get_weights()).size == 289509  # running statistics included


def test_the_projection_holds_the_model_in_the_ball_once_the_bound_has_decayed() -> None:
    scenario = load_scenario(
        "quickstart", ['data.dataset="synthetic_mnist"', "train.batch_size=16"]
    )
    attack = get_attack("iba", pgd_radius=0.05, atk_eps=0.3, atk_test_eps=0.05)
    assert isinstance(attack, IBA)
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (48, 28, 28, 1)).astype(np.float32)
    y = np.arange(48, dtype=np.int64) % 10
    generator = KerasGenerator("mlp", (28, 28, 1), 10, seed=1)
    model = compiled_model(scenario, (28, 28, 1), 10, dp=False)
    start = flatten(model.get_weights())
    distances = []
    for server_round in (4, 6):  # poisoning started in round 4: eps 0.3, then decayed
        trainer = KerasTrainer(model, scenario, seed=0)
        trainer.load(start, reset_optimizer=True)
        phase = Phase(started=4, alternate=True)
        attack.train_colluder(trainer, x, y, generator, phase=phase, server_round=server_round)
        distances.append(float(np.linalg.norm(trainer.weights() - start)))
    # the authors' pgd_attack is off while cur_training_eps == atk_eps, on after
    assert distances[0] > 0.2 and abs(distances[1] - 0.05) < 1e-5

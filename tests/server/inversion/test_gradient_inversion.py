"""Gradient inversion plays the honest-but-curious server against the real client training code.

The server knows the global weights it sent, the reply and the scenario (learning rate, local
steps), never the data. One 8x8 digit, batch 1, one local SGD step: the update is an exact
gradient and the reconstruction must exceed 20 dB PSNR. With DP-SGD at noise multiplier 1 (C = 1)
the same attack must do no better than uniform noise. Seeded (DP noise via
``dp.reproducible_noise``), tiny, a few seconds each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from common.data.shards import dataset_of
from common.inversion_config import InversionConfig
from common.learning.models import build_model
from common.learning.training import compiled_model, train_locally
from common.schema import Scenario
from server.inversion.gradient import (
    invert_gradient,
    recover_labels,
    total_variation,
    update_gradient,
)
from server.inversion.quality import psnr, ssim


def _scenario(noise_multiplier: float | None, batch_size: int = 1) -> Scenario:
    dp: dict[str, Any] = {"enabled": False}
    if noise_multiplier is not None:
        dp = {
            "enabled": True,
            "noise_multiplier": noise_multiplier,
            "l2_norm_clip": 1.0,
            "sampling": "shuffle",
            "reproducible_noise": True,  # seeded noise: the test is deterministic
        }
    train = {"batch_size": batch_size, "local_epochs": 1, "learning_rate": 0.1}
    return Scenario.model_validate(
        {"name": "inv", "seed": 3, "rounds": 1, "train": train, "dp": dp}
    )


def _attack(scenario: Scenario, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reconstructions, recovered labels, true images) for one local step on ``count`` digits."""
    dataset = dataset_of(scenario)
    x, y = dataset.x_train[:count], dataset.y_train[:count]
    tf.keras.utils.set_random_seed(0)
    base = [
        np.asarray(w, np.float32) for w in build_model("mlp", dataset.input_shape, 10).get_weights()
    ]
    dp = scenario.dp.enabled
    client = compiled_model(scenario, dataset.input_shape, 10, dp=dp)
    reply = train_locally(client, base, x, y, scenario=scenario, seed=5, dp=dp)
    assert reply.local_steps == 1
    target = update_gradient(base, reply.weights, learning_rate=0.1, local_steps=1)
    labels = recover_labels(target, count)
    server_model = build_model("mlp", dataset.input_shape, 10)
    server_model.set_weights(base)
    images = invert_gradient(
        server_model,
        target,
        labels,
        config=InversionConfig(iterations=400),
        data_range=(0.0, 1.0),
        rng=np.random.default_rng(1),
    )
    return images, labels, x


def _random_psnr(truth: np.ndarray) -> float:
    rng = np.random.default_rng(7)
    return float(np.mean([psnr(rng.uniform(0, 1, truth.shape), truth) for _ in range(32)]))


def test_one_step_batch_one_is_reconstructed_above_20_db() -> None:
    images, labels, truth = _attack(_scenario(None), 1)
    assert labels.tolist() == [4]  # iDLG: the true class of dataset.x_train[0]
    assert psnr(images[0], truth[0]) > 20.0
    assert ssim(images[0], truth[0]) > 0.9


def test_dp_sgd_at_noise_multiplier_one_leaves_a_random_image() -> None:
    images, _, truth = _attack(_scenario(1.0), 1)
    baseline = _random_psnr(truth[0])
    # "Fails": within 2 dB of uniform noise, far below the 20 dB of the undefended case.
    assert abs(psnr(images[0], truth[0]) - baseline) < 2.0
    assert ssim(images[0], truth[0]) < 0.2


def test_clipping_without_noise_still_leaks() -> None:
    # C = 1 rescales the one example's gradient; the cosine loss does not care about scale.
    images, _, truth = _attack(_scenario(0.0), 1)
    assert psnr(images[0], truth[0]) > 20.0


def test_the_update_is_the_gradient_times_the_step() -> None:
    base = [np.ones((2, 2), np.float32), np.zeros(3, np.float32)]
    trained = [np.full((2, 2), 0.8, np.float32), np.asarray([0.1, -0.2, 0.0], np.float32)]
    gradient = update_gradient(base, trained, learning_rate=0.1, local_steps=2)
    np.testing.assert_allclose(gradient[0], np.ones((2, 2)), rtol=1e-5)  # 0.2 / (0.1 * 2)
    np.testing.assert_allclose(gradient[1], [-0.5, 1.0, 0.0], rtol=1e-5)


def test_one_label_is_the_negative_bias_entry() -> None:
    # iDLG: the bias gradient of one example is p - onehot(y), negative only at y.
    assert recover_labels([np.asarray([0.1, -0.9, 0.2, 0.3])], 1).tolist() == [1]


def test_label_counts_by_largest_remainder() -> None:
    # Batch of 4: mean(p - onehot) with p ~ 0 gives -n_j / 4 on the classes present.
    bias = np.asarray([0.01, -0.25, 0.02, -0.5, 0.0])
    assert recover_labels([bias], 3).tolist() == [1, 3, 3]
    assert recover_labels([np.asarray([0.2, 0.1, 0.3])], 2).tolist() == [1, 1]  # no negative


def test_total_variation_of_a_step_edge() -> None:
    image = np.zeros((1, 2, 2, 1), np.float32)
    image[0, :, 1, 0] = 1.0  # one vertical edge: every horizontal pair differs by 1
    assert float(total_variation(tf.constant(image))) == pytest.approx(1.0)

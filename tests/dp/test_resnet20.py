"""ResNet-20 with GroupNorm: the paper's size, shapes, the compiled round, exact DP clipping."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf
from numpy.typing import NDArray
from tensorflow_privacy.privacy.fast_gradient_clipping.clip_grads import compute_gradient_norms

from common.errors import ConfigError
from common.learning.dp import build_dp_model
from common.learning.dp_conv import dp_layer_registry
from common.learning.local_round import StepFn, run_plan, sgd_step
from common.learning.models import MODELS, build_model

LOSS = tf.keras.losses.SparseCategoricalCrossentropy()


def _batch(n: int, shape: tuple[int, ...]) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    x = np.random.default_rng(0).normal(size=(n, *shape)).astype(np.float32)
    return x, (np.arange(n) % 10).astype(np.int64)


def _dp_resnet(shape: tuple[int, ...], **dp: object) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    settings: dict[str, object] = {"l2_norm_clip": 1.0, "noise_multiplier": 0.0}
    model = build_dp_model(
        MODELS["resnet20"].target(shape, 10, 0.0),
        **(settings | {"num_microbatches": None} | dp),  # type: ignore[arg-type]
    )
    model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss=LOSS)
    return model


@pytest.mark.parametrize(("shape", "params"), [((32, 32, 3), 269_722), ((28, 28, 1), 269_434)])
def test_parameter_count_is_the_papers_and_the_output_a_distribution(
    shape: tuple[int, ...], params: int
) -> None:
    # By hand at 32x32x3: stem 3*3*3*16 = 432; stage 1: 6 * 3*3*16*16 = 13,824;
    # stage 2: 3*3*16*32 + 5 * 3*3*32*32 = 50,688; stage 3: 3*3*32*64 + 5 * 3*3*64*64 = 202,752;
    # GroupNorm gamma + beta, 2 * (16 + 6*16 + 6*32 + 6*64) = 1,376 (BatchNorm's trainable count);
    # dense 64*10 + 10 = 650; option-A shortcuts none. Total 269,722 (He et al.'s 0.27M);
    # a 1-channel input takes 288 from the stem.
    model = build_model("resnet20", shape, 10)
    assert model.count_params() == params and not model.non_trainable_weights
    convs = [w for w in model.trainable_weights if "kernel" in w.name and w.shape.rank == 4]
    assert len(convs) == 19  # 19 convolutions + the dense layer: 20 weighted layers
    side = -(-shape[0] // 4)  # two stride-2 stages, "same" padding: 32 -> 8, 28 -> 7
    assert model.layers[-3].output_shape == (None, side, side, 64)
    probabilities = model(_batch(3, shape)[0]).numpy()
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def _compiled_round_lowers_the_loss(
    model: tf.keras.Model, step: Callable[[tf.keras.Model], StepFn], shape: tuple[int, ...]
) -> None:
    x, y = _batch(8, shape)
    before = float(LOSS(y, model(x)))
    losses = run_plan(model, step, x, y, [np.arange(8), np.arange(8)])
    assert losses.shape == (2,) and losses[1] < losses[0]
    assert float(LOSS(y, model(x))) < before


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1)])
def test_a_compiled_round_lowers_the_loss_of_its_batch(shape: tuple[int, ...]) -> None:
    tf.keras.utils.set_random_seed(0)
    model = build_model("resnet20", shape, 10)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss=LOSS)
    _compiled_round_lowers_the_loss(model, sgd_step, shape)


def test_a_compiled_dp_round_lowers_the_loss_of_its_batch() -> None:
    # Noise 0 and C large enough that the clipped step still descends on the batch.
    model = _dp_resnet((28, 28, 1), l2_norm_clip=10.0)
    _compiled_round_lowers_the_loss(model, lambda m: m.private_step, (28, 28, 1))


def _brute_force_norms(
    model: tf.keras.Model, x: NDArray[np.float32], y: NDArray[np.int64], group: int
) -> NDArray[np.float64]:
    norms = []
    for start in range(0, len(y), group):
        with tf.GradientTape() as tape:
            value = LOSS(y[start : start + group], model(x[start : start + group], training=True))
        grads = tape.gradient(value, model.trainable_variables)
        norms.append(np.sqrt(sum(np.sum(np.square(g.numpy(), dtype=np.float64)) for g in grads)))
    return np.array(norms)


@pytest.mark.parametrize("num_microbatches", [None, 2])
def test_fast_clipping_norms_through_blocks_and_group_norm_equal_brute_force(
    num_microbatches: int | None,
) -> None:
    # Every conv and GroupNorm sits inside a nested block model: a layer the forward pass skipped
    # or a wrong GroupNorm gradient (gamma and beta moved off 1 and 0 so both terms count)
    # would change the norm.
    model = _dp_resnet((8, 8, 3), num_microbatches=num_microbatches)
    for variable in model.trainable_variables:
        if "gamma" in variable.name or "beta" in variable.name:
            variable.assign_add(tf.random.normal(variable.shape, stddev=0.3, seed=1))
    x, y = _batch(6, (8, 8, 3))
    fast = compute_gradient_norms(
        model, dp_layer_registry(), x, y, num_microbatches=num_microbatches
    )
    expected = _brute_force_norms(model, x, y, group=6 // (num_microbatches or 6))
    np.testing.assert_allclose(np.asarray(fast, np.float64), expected, rtol=1e-5)


def test_an_unregistered_layer_inside_a_nested_block_is_refused() -> None:
    # tensorflow-privacy's own check sees only the top-level block; the nested BatchNorm would
    # make its norm pass raise mid-training (or the slow path run): refused at build instead.
    inputs = tf.keras.Input((8, 8, 4))
    block = tf.keras.Model(inputs, tf.keras.layers.BatchNormalization(name="bn")(inputs))
    layers = [
        tf.keras.layers.InputLayer(input_shape=(8, 8, 4)),
        block,
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10),
    ]
    with pytest.raises(ConfigError, match=r"^model layers: got bn \(BatchNormalization\);"):
        build_dp_model(layers, l2_norm_clip=1.0, noise_multiplier=1.0, num_microbatches=None)

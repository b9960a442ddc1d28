"""Fast clipping: per-example norms equal brute force; unregistered layers are refused."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import tensorflow as tf
from numpy.typing import NDArray
from tensorflow_privacy.privacy.fast_gradient_clipping.clip_grads import compute_gradient_norms

from common.errors import ConfigError
from common.learning.dp import assert_fast_clipping, build_dp_model
from common.learning.dp_conv import NormMethod, dp_layer_registry, factorised_squared_norms
from common.learning.models import MODELS

BATCH = 6


def _batch(shape: tuple[int, ...], seed: int = 0) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, *shape)).astype(np.float32)
    y = (np.arange(BATCH) % 10).astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _dp_model(layers: Sequence[tf.keras.layers.Layer], **dp: object) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    kwargs: dict[str, object] = {
        "l2_norm_clip": 1.0,
        "noise_multiplier": 0.0,
        "num_microbatches": None,
    }
    model = build_dp_model(layers, **(kwargs | dp))  # type: ignore[arg-type]
    model.compile(
        optimizer=tf.keras.optimizers.SGD(learning_rate=1.0),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
    )
    return model


def _brute_force_norms(
    model: tf.keras.Model, x: NDArray[np.float32], y: NDArray[np.int64], group: int = 1
) -> NDArray[np.float64]:
    """||grad of the mean loss of each group of ``group`` consecutive examples||, one tape each."""
    loss = tf.keras.losses.SparseCategoricalCrossentropy()
    norms = []
    for start in range(0, len(y), group):
        with tf.GradientTape() as tape:
            value = loss(y[start : start + group], model(x[start : start + group], training=True))
        grads = tape.gradient(value, model.trainable_variables)
        norms.append(np.sqrt(sum(np.sum(np.square(g.numpy(), dtype=np.float64)) for g in grads)))
    return np.array(norms)


def _fast_norms(
    model: tf.keras.Model,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    num_microbatches: int | None = None,
) -> NDArray[np.float64]:
    norms = compute_gradient_norms(
        model, dp_layer_registry(), x, y, num_microbatches=num_microbatches
    )
    return np.asarray(norms, dtype=np.float64)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_built_in_models_per_example_norms_match_brute_force(name: str) -> None:
    x, y = _batch((8, 8, 1))
    model = _dp_model(MODELS[name].target((8, 8, 1), 10, 0.0))
    biases = [v for v in model.trainable_variables if "bias" in v.name]
    assert len(biases) == (2 if name == "mlp" else 3)  # the bias terms are part of the norm
    for bias in biases:  # non-zero biases so a missing bias term would show
        bias.assign(tf.random.normal(bias.shape, seed=1))
    np.testing.assert_allclose(_fast_norms(model, x, y), _brute_force_norms(model, x, y), rtol=1e-5)


@pytest.mark.parametrize(
    "conv",
    [
        {"filters": 5, "kernel_size": 3, "strides": 2, "padding": "valid"},
        {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"},  # uneven padding
        {"filters": 4, "kernel_size": (3, 2), "padding": "same", "use_bias": False},
        {
            "filters": 3,
            "kernel_size": 3,
            "dilation_rate": 2,
            "padding": "same",
            "activation": "tanh",
        },
        {"filters": 8, "kernel_size": 1, "padding": "valid"},
    ],
)
def test_conv2d_variants_match_brute_force(conv: dict[str, object]) -> None:
    x, y = _batch((9, 7, 2), seed=3)
    layers = [
        tf.keras.layers.InputLayer(input_shape=(9, 7, 2)),
        tf.keras.layers.Conv2D(**conv),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10, activation="softmax"),
    ]
    model = _dp_model(layers)
    np.testing.assert_allclose(_fast_norms(model, x, y), _brute_force_norms(model, x, y), rtol=1e-5)


@pytest.mark.parametrize("num_microbatches", [1, 2, 3])
def test_microbatch_norms_are_norms_of_the_microbatch_mean_gradient(num_microbatches: int) -> None:
    x, y = _batch((8, 8, 1), seed=5)
    model = _dp_model(MODELS["cnn"].target((8, 8, 1), 10, 0.0), num_microbatches=num_microbatches)
    group = BATCH // num_microbatches
    np.testing.assert_allclose(
        _fast_norms(model, x, y, num_microbatches),
        _brute_force_norms(model, x, y, group),
        rtol=1e-5,
    )


def test_gram_and_outer_forms_agree_with_a_hand_computed_value() -> None:
    # One example, T = 2 positions, K = 2, c_out = 1: P = [[1, 2], [3, 4]], D = [[1], [-1]].
    # P^T D = [1 - 3, 2 - 4] = [-2, -2] -> 8; D^T 1 = 0 -> bias adds 0.
    patches = tf.constant([[[1.0, 2.0], [3.0, 4.0]]])
    grads = tf.constant([[[1.0], [-1.0]]])
    methods: tuple[NormMethod, ...] = ("gram", "outer", "auto")
    for method in methods:
        value = factorised_squared_norms(
            patches, grads, use_bias=True, num_microbatches=None, method=method
        )
        np.testing.assert_allclose(value.numpy(), [8.0])
    # D = [[1], [2]]: P^T D = [7, 10] -> 149; bias gradient 3 -> 9; total 158.
    grads = tf.constant([[[1.0], [2.0]]])
    for method in methods[:2]:
        value = factorised_squared_norms(
            patches, grads, use_bias=True, num_microbatches=None, method=method
        )
        np.testing.assert_allclose(value.numpy(), [158.0])


def test_an_unknown_norm_method_raises_config_error() -> None:
    ones = tf.ones((1, 2, 2))
    with pytest.raises(ConfigError, match=r"^method: got 'svd'; allowed: auto, gram, outer$"):
        factorised_squared_norms(
            ones,
            ones,
            use_bias=False,
            num_microbatches=None,
            method="svd",  # type: ignore[arg-type]
        )


def test_gram_and_outer_forms_agree_on_random_batches() -> None:
    rng = np.random.default_rng(11)
    patches = tf.constant(rng.normal(size=(4, 5, 5, 12)), dtype=tf.float32)
    grads = tf.constant(rng.normal(size=(4, 5, 5, 7)), dtype=tf.float32)
    methods: tuple[NormMethod, ...] = ("gram", "outer")
    for microbatches in (None, 2):
        gram, outer = (
            factorised_squared_norms(
                patches, grads, use_bias=True, num_microbatches=microbatches, method=m
            )
            for m in methods
        )
        np.testing.assert_allclose(gram.numpy(), outer.numpy(), rtol=1e-5)


@pytest.mark.parametrize("expected_batch_size", [None, 10])
def test_one_step_applies_the_normalised_sum_of_clipped_gradients(
    expected_batch_size: int | None,
) -> None:
    # noise 0, SGD lr 1: w' = w - (1/N) sum_i g_i min(1, C / ||g_i||), C small so all clip;
    # N = |B| for DPSequential, N = b (expected batch size) for PoissonDPSequential.
    x, y = _batch((8, 8, 1), seed=9)
    model = _dp_model(
        MODELS["cnn"].target((8, 8, 1), 10, 0.0),
        l2_norm_clip=0.05,
        expected_batch_size=expected_batch_size,
    )
    divisor = expected_batch_size or BATCH
    loss = tf.keras.losses.SparseCategoricalCrossentropy()
    before = [w.copy() for w in model.get_weights()]
    expected = [np.zeros_like(w, dtype=np.float64) for w in before]
    for i in range(BATCH):
        with tf.GradientTape() as tape:
            value = loss(y[i : i + 1], model(x[i : i + 1], training=True))
        grads = [
            g.numpy().astype(np.float64) for g in tape.gradient(value, model.trainable_variables)
        ]
        norm = np.sqrt(sum(np.sum(g**2) for g in grads))
        assert norm > 0.05  # every example is clipped, so clipping is what is tested
        for total, g in zip(expected, grads, strict=True):
            total -= g * min(1.0, 0.05 / norm) / divisor
    model.train_on_batch(x, y)
    for w_after, w_before, step in zip(model.get_weights(), before, expected, strict=True):
        np.testing.assert_allclose(w_after - w_before, step, atol=1e-6)


def test_poisson_model_takes_an_empty_batch_as_a_noise_only_step() -> None:
    # Update of an empty step with SGD lr 1: N(0, (sigma C / b)^2) per weight, here
    # sigma 2, C 0.5, b 4 -> std 0.25; 9,930 cnn weights estimate it to within about 1%.
    model = _dp_model(
        MODELS["cnn"].target((8, 8, 1), 10, 0.0),
        l2_norm_clip=0.5,
        noise_multiplier=2.0,
        expected_batch_size=4,
    )
    before = np.concatenate([w.ravel() for w in model.get_weights()])
    x, y = _batch((8, 8, 1))
    model.train_on_batch(x[:0], y[:0])
    step = np.concatenate([w.ravel() for w in model.get_weights()]) - before
    assert step.size == 9930
    assert abs(step.mean()) < 0.02
    assert step.std() == pytest.approx(0.25, rel=0.05)
    silent = _dp_model(MODELS["mlp"].target((8, 8, 1), 10, 0.0), expected_batch_size=4)
    weights = silent.get_weights()
    silent.train_on_batch(x[:0], y[:0])  # noise 0: an empty step changes nothing
    assert all(np.array_equal(a, b) for a, b in zip(weights, silent.get_weights(), strict=True))


@pytest.mark.parametrize(
    "unregistered",
    [tf.keras.layers.BatchNormalization, tf.keras.layers.LayerNormalization],
)
def test_an_unregistered_trainable_layer_raises_instead_of_falling_back(
    unregistered: type[tf.keras.layers.Layer],
) -> None:
    layers = [*MODELS["cnn"].target((8, 8, 1), 10, 0.0)]
    layers.insert(2, unregistered())
    with pytest.raises(
        ConfigError, match=r"^model layers: got \w+ \(" + unregistered.__name__ + r"\);"
    ):
        build_dp_model(layers, l2_norm_clip=1.0, noise_multiplier=1.1, num_microbatches=None)


def test_assert_fast_clipping_rejects_a_plain_keras_model() -> None:
    plain = tf.keras.Sequential(MODELS["mlp"].target((8, 8, 1), 10, 0.0))
    with pytest.raises(ConfigError, match="not a DP Keras model"):
        assert_fast_clipping(plain)
    assert_fast_clipping(_dp_model(MODELS["mlp"].target((8, 8, 1), 10, 0.0)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"l2_norm_clip": 0.0}, r"^dp.l2_norm_clip: got 0.0; must be > 0$"),
        ({"noise_multiplier": -1.0}, r"^dp.noise_multiplier: got -1.0; must be >= 0$"),
        ({"num_microbatches": 0}, r"^dp.num_microbatches: got 0; must be >= 1$"),
        ({"expected_batch_size": 0}, r"^train.batch_size: got 0; must be >= 1$"),
        (
            {"expected_batch_size": 8, "num_microbatches": 2},
            r"^dp.num_microbatches: got 2; must be unset with Poisson batches$",
        ),
    ],
)
def test_bad_dp_parameters_raise_config_error(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "l2_norm_clip": 1.0,
        "noise_multiplier": 1.0,
        "num_microbatches": None,
    }
    with pytest.raises(ConfigError, match=message):
        build_dp_model(MODELS["mlp"].target((8, 8, 1), 10, 0.0), **(arguments | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("num_microbatches", [None, 2, 3])
def test_shuffle_step_equals_tensorflow_privacys_own_step(num_microbatches: int | None) -> None:
    # Noise 0: the secret-noise model must take tensorflow-privacy's DPSequential step exactly
    # (clipped mean over the microbatches), only the noise source differs.
    from tensorflow_privacy.privacy.keras_models.dp_keras_model import DPSequential

    x, y = _batch((8, 8, 1), seed=4)
    ours = _dp_model(
        MODELS["cnn"].target((8, 8, 1), 10, 0.0),
        l2_norm_clip=0.05,
        num_microbatches=num_microbatches,
    )
    theirs = DPSequential(
        l2_norm_clip=0.05,
        noise_multiplier=0.0,
        num_microbatches=num_microbatches,
        use_xla=False,
        layer_registry=dp_layer_registry(),
        layers=MODELS["cnn"].target((8, 8, 1), 10, 0.0),
    )
    theirs.compile(
        optimizer=tf.keras.optimizers.SGD(learning_rate=1.0),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
    )
    theirs.set_weights(ours.get_weights())
    ours.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)

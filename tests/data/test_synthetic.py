"""Synthetic research-sized datasets and LeNet-5: sizes, determinism, learnability, DP support."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from common.data.datasets import DATASETS, load_dataset
from common.data.synthetic import synthetic_images
from common.errors import ConfigError
from common.learning.dp import build_dp_model
from common.learning.models import MODELS, build_model


def test_images_are_a_pure_function_of_seed_and_stream_and_balanced() -> None:
    x, y = synthetic_images(1000, (28, 28, 1), seed=3)
    again, labels = synthetic_images(1000, (28, 28, 1), seed=3)
    other, _ = synthetic_images(1000, (28, 28, 1), seed=3, stream=1)
    np.testing.assert_array_equal(x, again)
    np.testing.assert_array_equal(y, labels)
    assert not np.array_equal(x, other)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(np.bincount(y), [100] * 10)


@pytest.mark.parametrize(
    ("shape", "low", "high"), [((28, 28, 1), 0.8, 0.97), ((32, 32, 3), 0.9, 1.0)]
)
def test_classes_are_learnable_but_not_trivially(
    shape: tuple[int, ...], low: float, high: float
) -> None:
    # A held-out stream of the same classes: a linear model must generalise, not memorise.
    x, y = synthetic_images(3000, shape, seed=1)
    x_test, y_test = synthetic_images(1000, shape, seed=1, stream=1)
    model = LogisticRegression(max_iter=300).fit(x.reshape(len(x), -1), y)
    assert low <= model.score(x_test.reshape(len(x_test), -1), y_test) <= high
    # Chance would be 0.1: a shuffled-label fit learns nothing transferable.
    shuffled = LogisticRegression(max_iter=100).fit(
        x.reshape(len(x), -1), np.random.default_rng(0).permutation(y)
    )
    assert shuffled.score(x_test.reshape(len(x_test), -1), y_test) < 0.2


def test_synthetic_mnist_has_mnists_sizes_and_ignores_the_scenario_seed() -> None:
    data = load_dataset("synthetic_mnist", test_fraction=0.2, seed=1)
    assert data.x_train.shape == (60_000, 28, 28, 1) and data.x_test.shape == (10_000, 28, 28, 1)
    assert data.num_classes == 10 and data.input_shape == (28, 28, 1)
    np.testing.assert_array_equal(np.bincount(data.y_train), [6000] * 10)
    assert load_dataset("synthetic_mnist", test_fraction=0.3, seed=9) is data  # official split
    assert DATASETS["synthetic_cifar10"].tags["split"] == "official"


@pytest.mark.parametrize(("shape", "params"), [((28, 28, 1), 61_706), ((32, 32, 3), 83_126)])
def test_lenet5_has_the_papers_parameter_count_and_trains_with_fast_dp_clipping(
    shape: tuple[int, ...], params: int
) -> None:
    # 61,706 = 156 + 2,416 + 48,120 + 10,164 + 850 (LeCun et al. 1998's C1, C3, C5, F6, output
    # at 32x32x1; at 28x28x1 "same" padding of C1 restores that geometry).
    assert build_model("lenet5", shape, 10).count_params() == params
    dp = build_dp_model(
        MODELS["lenet5"].target(shape, 10, 0.0),
        l2_norm_clip=1.0,
        noise_multiplier=0.0,
        num_microbatches=None,
    )
    assert dp.count_params() == params  # fast clipping accepted every trainable layer


def test_lenet5_refuses_inputs_too_small_for_its_second_convolution() -> None:
    with pytest.raises(ConfigError, match="model.name: got 'lenet5' for 8x8 inputs"):
        build_model("lenet5", (8, 8, 1), 10)
    assert build_model("lenet5", (12, 12, 1), 10).output_shape == (None, 10)

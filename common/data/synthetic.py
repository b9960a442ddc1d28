"""Synthetic MNIST- and CIFAR-10-shaped datasets of the real sizes, offline and seeded.

So that every benchmark can run at research scale without the network: ``synthetic_mnist``
(60,000 / 10,000 images of 28x28x1) and ``synthetic_cifar10`` (50,000 / 10,000 of 32x32x3),
10 classes, balanced. Class-structured so that learning happens and is not trivial: class c has
a smooth prototype image P_c (Gaussian noise blurred by a 5x5 box filter, rescaled to [0, 1]);
an example of class c is

    x = clip( s * P_c' + (1 - s) * U + N(0, 0.25^2), 0, 1 )

with U uniform pixel noise, P_c' the prototype shifted by up to 2 pixels in each direction and
s ~ U(0.2, 0.8) a per-example contrast, so a model learns it well but not perfectly (logistic
regression fitted on 3,000 images scores 0.89 at 28x28x1 and 0.98 at 32x32x3 on 1,000 others).
Everything is drawn from a fixed seed (an "official split": the scenario's seed does not
change the data, as with the real datasets), one class after another in chunks, float32 only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from common.data.datasets import Dataset, DatasetSource, _make_dataset, register_dataset

_SEED = 20240613
_CHUNK = 5000


def _prototypes(rng: np.random.Generator, shape: tuple[int, ...]) -> NDArray[np.float32]:
    """10 smooth images in [0, 1]: Gaussian noise through a 5x5 box blur, min-max scaled."""
    raw = rng.standard_normal((10, shape[0] + 4, shape[1] + 4, shape[2])).astype(np.float32)
    blurred = np.zeros((10, *shape), dtype=np.float32)
    for i in range(5):
        for j in range(5):
            blurred += raw[:, i : i + shape[0], j : j + shape[1]]
    low = blurred.min(axis=(1, 2, 3), keepdims=True)
    high = blurred.max(axis=(1, 2, 3), keepdims=True)
    scaled: NDArray[np.float32] = ((blurred - low) / (high - low)).astype(np.float32)
    return scaled


def synthetic_images(
    num_examples: int, shape: tuple[int, ...], *, seed: int, stream: int = 0
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """``num_examples`` images of ``shape`` (H, W, C) and their labels, balanced over 10 classes.

    ``seed`` fixes the class prototypes, ``stream`` the examples drawn around them. A pure
    function of the arguments; memory is the output plus one chunk of temporaries.
    """
    prototypes = _prototypes(np.random.default_rng(seed), shape)
    rng = np.random.default_rng([seed, stream])
    y = rng.permutation(np.arange(num_examples, dtype=np.int64) % 10)
    x = np.empty((num_examples, *shape), dtype=np.float32)
    for start in range(0, num_examples, _CHUNK):
        labels = y[start : start + _CHUNK]
        n = len(labels)
        shifts = rng.integers(-2, 3, size=(n, 2))
        shifted = np.stack(
            [
                np.roll(prototypes[c], tuple(s), axis=(0, 1))
                for c, s in zip(labels, shifts, strict=True)
            ]
        )
        contrast = rng.uniform(0.2, 0.8, size=(n, 1, 1, 1)).astype(np.float32)
        uniform = rng.random((n, *shape), dtype=np.float32)
        noise = rng.standard_normal((n, *shape), dtype=np.float32) * np.float32(0.25)
        mixed = contrast * shifted + (1 - contrast) * uniform
        x[start : start + n] = np.clip(mixed + noise, 0.0, 1.0)
    return x, y


def _synthetic(name: str, sizes: tuple[int, int], shape: tuple[int, ...], seed: int) -> Dataset:
    # The test split is a second stream of the same classes: same prototypes, fresh examples.
    train = synthetic_images(sizes[0], shape, seed=seed)
    test = synthetic_images(sizes[1], shape, seed=seed, stream=1)
    return _make_dataset(name, train, test, scale=1.0, num_classes=10)


@register_dataset("synthetic_mnist", source="generated (offline, seeded)")
class SyntheticMnist(DatasetSource):
    """60,000 / 10,000 class-structured 28x28x1 images: MNIST's sizes (module doc)."""

    @staticmethod
    def read(paths: list[Path], *, test_fraction: float, seed: int) -> Dataset:
        return _synthetic("synthetic_mnist", (60_000, 10_000), (28, 28, 1), _SEED)


@register_dataset("synthetic_cifar10", source="generated (offline, seeded)")
class SyntheticCifar10(DatasetSource):
    """50,000 / 10,000 class-structured 32x32x3 images: CIFAR-10's sizes (module doc)."""

    @staticmethod
    def read(paths: list[Path], *, test_fraction: float, seed: int) -> Dataset:
        return _synthetic("synthetic_cifar10", (50_000, 10_000), (32, 32, 3), _SEED + 1)

"""Datasets: the offline digits split; the Keras-cache readers on tiny files in the real format."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from common.data.datasets import DATASETS, _load_cached, load_dataset
from common.errors import ConfigError


def test_registry_lists_the_datasets() -> None:
    assert list(DATASETS) == [
        "cifar10",
        "digits",
        "fashion_mnist",
        "hub",
        "mnist",
        "synthetic_cifar10",
        "synthetic_mnist",
    ]
    assert DATASETS["digits"].tags["split"] == "stratified"
    assert {DATASETS[n].tags["split"] for n in ("mnist", "fashion_mnist", "cifar10")} == {
        "official"
    }


def test_each_dataset_declares_its_files_and_split() -> None:
    # load_dataset and `fedshield validate` read these declarations; they know no dataset by name.
    sources = {name: DATASETS[name].target for name in DATASETS}
    assert {name for name, source in sources.items() if source.seeded_split} == {"digits", "hub"}
    assert dict(sources["digits"].files) == {}
    assert list(sources["mnist"].files) == ["mnist.npz"]
    assert list(sources["cifar10"].files) == ["cifar-10-batches-py.tar.gz"]
    assert len(sources["fashion_mnist"].files) == 4


def test_digits_split_sizes_shapes_dtypes_and_range() -> None:
    data = load_dataset("digits", test_fraction=0.2, seed=0)
    assert data.x_train.shape == (1437, 8, 8, 1)
    assert data.x_test.shape == (360, 8, 8, 1)
    assert data.y_train.shape == (1437,) and data.y_test.shape == (360,)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert (data.num_classes, data.input_shape, data.name) == (10, (8, 8, 1), "digits")
    pixels = np.concatenate([data.x_train.ravel(), data.x_test.ravel()])
    assert pixels.min() == 0.0 and pixels.max() == 1.0
    # Pixels are x / 16 with x in {0..16}: every value is a multiple of 1/16.
    assert np.array_equal(pixels * 16, np.round(pixels * 16))
    assert set(np.unique(data.y_train)) == set(range(10))


def test_digits_split_is_stratified() -> None:
    data = load_dataset("digits", test_fraction=0.2, seed=0)
    test_counts = np.bincount(data.y_test, minlength=10)
    total_counts = test_counts + np.bincount(data.y_train, minlength=10)
    # Each class keeps its 20 % share in the test set, to within one image.
    assert np.all(np.abs(test_counts - 0.2 * total_counts) <= 1)


def test_digits_split_is_deterministic_in_the_seed() -> None:
    first = load_dataset("digits", test_fraction=0.2, seed=7)
    again = load_dataset("digits", test_fraction=0.25, seed=7)
    other = load_dataset("digits", test_fraction=0.2, seed=8)
    assert again.x_test.shape[0] == 450  # ceil(1797 * 0.25)
    assert not np.array_equal(first.y_test, other.y_test)
    _load_cached.cache_clear()  # rebuild from scratch: equal arrays, not just the cached object
    rebuilt = load_dataset("digits", test_fraction=0.2, seed=7)
    assert rebuilt is not first
    assert np.array_equal(rebuilt.x_train, first.x_train)
    assert np.array_equal(rebuilt.y_test, first.y_test)


def test_load_is_cached_and_arrays_are_read_only() -> None:
    first = load_dataset("digits", test_fraction=0.2, seed=1)
    assert load_dataset("digits", test_fraction=0.2, seed=1) is first
    for array in (first.x_train, first.y_train, first.x_test, first.y_test):
        assert not array.flags.writeable


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_test_fraction_outside_the_open_unit_interval_fails(fraction: float) -> None:
    with pytest.raises(
        ConfigError, match=rf"^data.test_fraction: got {fraction}; must be in \(0, 1\)$"
    ):
        load_dataset("digits", test_fraction=fraction, seed=0)


def test_test_fraction_too_small_to_stratify_fails_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^data.test_fraction: got 0.001; ") as caught:
        load_dataset("digits", test_fraction=0.001, seed=0)
    assert "\n" not in str(caught.value)


def test_unknown_dataset_lists_the_valid_names() -> None:
    with pytest.raises(
        ConfigError,
        match="unknown dataset 'svhn'; valid: cifar10, digits, fashion_mnist, hub, mnist, "
        "synthetic_cifar10, synthetic_mnist",
    ):
        load_dataset("svhn", test_fraction=0.2, seed=0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mnist", ["mnist.npz"]),
        (
            "fashion_mnist",
            ["fashion-mnist/train-images-idx3-ubyte.gz", "fashion-mnist/t10k-labels-idx1-ubyte.gz"],
        ),
        ("cifar10", ["cifar-10-batches-py.tar.gz"]),
    ],
)
def test_missing_files_fail_in_one_line_naming_file_and_directory(
    tmp_path: Path, name: str, expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_dataset(name, test_fraction=0.2, seed=0, data_dir=str(tmp_path))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"dataset {name!r}: missing ")
    assert f" under {tmp_path.resolve()};" in message
    for file in expected:
        assert file in message


def _fake_images(rng: np.random.Generator, count: int, shape: tuple[int, ...]) -> NDArray[np.uint8]:
    images = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
    images[0].flat[0], images[0].flat[1] = 255, 51  # golden pixels: 1.0 and 0.2
    return images


def test_mnist_reads_a_real_format_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x_train, x_test = _fake_images(rng, 6, (28, 28)), _fake_images(rng, 4, (28, 28))
    y_train = np.array([0, 1, 2, 3, 4, 9], dtype=np.uint8)
    y_test = np.array([5, 6, 7, 8], dtype=np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    data = load_dataset("mnist", test_fraction=0.2, seed=0, data_dir=str(tmp_path))
    assert data.x_train.shape == (6, 28, 28, 1) and data.x_test.shape == (4, 28, 28, 1)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train[0, 0, 0, 0] == 1.0 and data.x_train[0, 0, 1, 0] == np.float32(51 / 255)
    np.testing.assert_allclose(data.x_test[..., 0] * 255, x_test, atol=1e-4)
    assert data.y_train.tolist() == [0, 1, 2, 3, 4, 9] and data.y_test.tolist() == [5, 6, 7, 8]
    assert (data.input_shape, data.num_classes, data.name) == ((28, 28, 1), 10, "mnist")
    # The official split ignores test_fraction and seed: one cached copy serves every seed.
    assert load_dataset("mnist", test_fraction=0.5, seed=9, data_dir=str(tmp_path)) is data


def test_mnist_with_foreign_content_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "mnist.npz").write_bytes(b"not a zip archive")
    with pytest.raises(ConfigError, match=r"^dataset 'mnist': cannot read .*mnist.npz: ") as caught:
        load_dataset("mnist", test_fraction=0.2, seed=0, data_dir=str(tmp_path))
    assert "\n" not in str(caught.value)


def _write_idx(path: Path, magic: int, array: NDArray[np.uint8]) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


def test_fashion_mnist_reads_real_format_idx_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    x_train, x_test = _fake_images(rng, 5, (28, 28)), _fake_images(rng, 3, (28, 28))
    _write_idx(folder / "train-images-idx3-ubyte.gz", 2051, x_train)
    _write_idx(
        folder / "train-labels-idx1-ubyte.gz", 2049, np.array([9, 0, 0, 3, 1], dtype=np.uint8)
    )
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", 2051, x_test)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", 2049, np.array([2, 7, 5], dtype=np.uint8))
    data = load_dataset("fashion_mnist", test_fraction=0.2, seed=0, data_dir=str(tmp_path))
    assert data.x_train.shape == (5, 28, 28, 1) and data.x_test.shape == (3, 28, 28, 1)
    assert data.x_train[0, 0, 0, 0] == 1.0
    np.testing.assert_allclose(data.x_train[..., 0] * 255, x_train, atol=1e-4)
    assert data.y_train.tolist() == [9, 0, 0, 3, 1] and data.y_test.tolist() == [2, 7, 5]


def _tar_add(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
    info.size = len(payload)
    archive.addfile(info, io.BytesIO(payload))


def _cifar_batch(images: NDArray[np.uint8], labels: list[int]) -> bytes:
    # The real batches hold channel-major rows: R plane, G plane, B plane of 32x32 each.
    rows = images.transpose(0, 3, 1, 2).reshape(len(labels), 3072)
    return pickle.dumps({b"batch_label": b"fake", b"data": rows, b"labels": labels}, protocol=4)


def test_cifar10_reads_a_real_format_archive(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    batches = [(_fake_images(rng, 2, (32, 32, 3)), [i, (i + 1) % 10]) for i in range(5)]
    test_images = _fake_images(rng, 3, (32, 32, 3))
    with tarfile.open(tmp_path / "cifar-10-batches-py.tar.gz", "w:gz") as archive:
        for i, (images, labels) in enumerate(batches, start=1):
            _tar_add(archive, f"data_batch_{i}", _cifar_batch(images, labels))
        _tar_add(archive, "test_batch", _cifar_batch(test_images, [4, 2, 0]))
    data = load_dataset("cifar10", test_fraction=0.2, seed=0, data_dir=str(tmp_path))
    assert data.x_train.shape == (10, 32, 32, 3) and data.x_test.shape == (3, 32, 32, 3)
    expected_train = np.concatenate([images for images, _ in batches])
    np.testing.assert_allclose(data.x_train * 255, expected_train, atol=1e-4)  # channels last
    assert data.y_train.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    assert data.y_test.tolist() == [4, 2, 0]
    assert data.input_shape == (32, 32, 3)


class _RunsCode:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_cifar10_refuses_a_pickle_that_would_run_code(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "cifar-10-batches-py.tar.gz", "w:gz") as archive:
        _tar_add(archive, "data_batch_1", pickle.dumps({b"data": _RunsCode()}))
    with pytest.raises(ConfigError, match=r"refusing to load (posix|nt)\.system from a data file"):
        load_dataset("cifar10", test_fraction=0.2, seed=0, data_dir=str(tmp_path))

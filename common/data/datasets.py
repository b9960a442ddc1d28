"""Dataset registry: image-classification sets as float32 ``(N, H, W, C)`` arrays in ``[0, 1]``.

``digits`` ships with scikit-learn and works offline. ``mnist``, ``fashion_mnist`` and ``cifar10``
read the files that ``tf.keras.datasets.<name>.load_data()`` caches in ``~/.keras/datasets``, in
the same layout, from ``data_dir`` or that directory. They are parsed here rather than through
``load_data`` because Keras downloads whenever a file is missing or its hash differs, and a
simulation host has no network: a missing file must fail in one line before any simulation,
naming the file and where to put it. Parsing is also safer than Keras's: ``mnist.npz`` is read
with ``allow_pickle=False`` and CIFAR's pickled batches through an unpickler that can only build
numpy arrays.

:func:`load_dataset` is cached per process: every simulated client in a worker calls it.
"""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from common.errors import ConfigError
from common.registry import NoParams, Registry

#: Where Keras caches its datasets; the default ``data_dir``.
KERAS_CACHE = Path("~/.keras/datasets")
_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_CIFAR10_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split. ``x`` float32 ``(N, H, W, C)`` in ``[0, 1]``, ``y`` int64 ``(N,)``.

    The arrays are read-only: one instance is shared by every client of a worker process.
    """

    x_train: NDArray[np.float32]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]
    num_classes: int
    input_shape: tuple[int, ...]
    name: str


class DatasetLoader(Protocol):
    """A registered loader; ``test_fraction`` and ``seed`` matter only to stratified splits."""

    def __call__(self, *, test_fraction: float, seed: int, data_dir: Path) -> Dataset: ...


DATASETS: Registry[DatasetLoader] = Registry("dataset")


def _images(raw: NDArray[Any], scale: float) -> NDArray[np.float32]:
    x = np.asarray(raw, dtype=np.float32) / np.float32(scale)
    return x[..., np.newaxis] if x.ndim == 3 else x  # grayscale gets its channel axis


def _make_dataset(
    name: str,
    train: tuple[NDArray[Any], NDArray[Any]],
    test: tuple[NDArray[Any], NDArray[Any]],
    *,
    scale: float,
    num_classes: int,
) -> Dataset:
    """Scale pixels by ``1/scale``, flatten labels to int64 and freeze every array."""
    x_train, x_test = _images(train[0], scale), _images(test[0], scale)
    y_train = np.asarray(train[1], dtype=np.int64).ravel()
    y_test = np.asarray(test[1], dtype=np.int64).ravel()
    for array in (x_train, y_train, x_test, y_test):
        array.setflags(write=False)
    return Dataset(
        x_train,
        y_train,
        x_test,
        y_test,
        num_classes,
        tuple(int(d) for d in x_train.shape[1:]),
        name,
    )


def _require(name: str, data_dir: Path, files: dict[str, str]) -> list[Path]:
    """Paths of ``files`` (relative name -> download URL) under ``data_dir``, all present."""
    missing = {rel: url for rel, url in files.items() if not (data_dir / rel).is_file()}
    if missing:
        names = ", ".join(missing)
        urls = " ".join(sorted(set(missing.values())))
        raise ConfigError(
            f"dataset {name!r}: missing {names} under {data_dir}; download {urls} to those "
            f"paths (tf.keras.datasets.{name}.load_data() caches them in {KERAS_CACHE}) "
            "or set data.data_dir to a directory that holds them"
        )
    return [data_dir / rel for rel in files]


def _read_or_fail(name: str, path: Path, read: Callable[[], Dataset]) -> Dataset:
    # A truncated or foreign file must fail in one line like a missing one, not with a traceback.
    try:
        return read()
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        pickle.UnpicklingError,
        tarfile.TarError,
    ) as err:
        raise ConfigError(f"dataset {name!r}: cannot read {path}: {err}") from None


@DATASETS.register("digits", NoParams, split="stratified", source="scikit-learn (offline)")
def load_digits(*, test_fraction: float, seed: int, data_dir: Path) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), pixels / 16.

    Split: ``train_test_split(stratify=y, test_size=test_fraction, random_state=seed)``, so the
    test set has ``ceil(1797 * test_fraction)`` images (0.2 -> 1437 / 360) and every class keeps
    its share. ``data_dir`` is unused: the data ships with scikit-learn.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            bunch.images,
            bunch.target,
            test_size=test_fraction,
            random_state=seed,
            stratify=bunch.target,
        )
    except ValueError as err:  # too few test (or train) images to hold one of every class
        raise ConfigError(f"data.test_fraction: got {test_fraction}; {err}") from None
    return _make_dataset("digits", (x_train, y_train), (x_test, y_test), scale=16.0, num_classes=10)


@DATASETS.register("mnist", NoParams, split="official", source="mnist.npz (Keras cache)")
def load_mnist(*, test_fraction: float, seed: int, data_dir: Path) -> Dataset:
    """MNIST, 60,000 / 10,000 28x28 grayscale digits (official split), pixels / 255.

    Reads ``<data_dir>/mnist.npz`` (arrays ``x_train, y_train, x_test, y_test``), the file
    ``tf.keras.datasets.mnist.load_data()`` caches.
    """
    (path,) = _require("mnist", data_dir, {"mnist.npz": _KERAS_ORIGIN + "mnist.npz"})

    def read() -> Dataset:
        with np.load(path, allow_pickle=False) as arrays:
            train = (arrays["x_train"], arrays["y_train"])
            test = (arrays["x_test"], arrays["y_test"])
        return _make_dataset("mnist", train, test, scale=255.0, num_classes=10)

    return _read_or_fail("mnist", path, read)


_FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def _idx(path: Path, header: int) -> NDArray[np.uint8]:
    # IDX files (LeCun's format) are a big-endian header followed by raw uint8 values.
    with gzip.open(path, "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=header)


@DATASETS.register(
    "fashion_mnist", NoParams, split="official", source="fashion-mnist/ (Keras cache)"
)
def load_fashion_mnist(*, test_fraction: float, seed: int, data_dir: Path) -> Dataset:
    """Fashion-MNIST, 60,000 / 10,000 28x28 grayscale clothing images (official split), / 255.

    Reads the four gzipped IDX files of ``<data_dir>/fashion-mnist/`` that
    ``tf.keras.datasets.fashion_mnist.load_data()`` caches.
    """
    files = {f"fashion-mnist/{f}": _KERAS_ORIGIN + f for f in _FASHION_FILES}
    train_x, train_y, test_x, test_y = _require("fashion_mnist", data_dir, files)

    def read() -> Dataset:
        y_train, y_test = _idx(train_y, 8), _idx(test_y, 8)
        x_train = _idx(train_x, 16).reshape(y_train.size, 28, 28)
        x_test = _idx(test_x, 16).reshape(y_test.size, 28, 28)
        return _make_dataset(
            "fashion_mnist", (x_train, y_train), (x_test, y_test), scale=255.0, num_classes=10
        )

    return _read_or_fail("fashion_mnist", data_dir / "fashion-mnist", read)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays: a CIFAR batch cannot run code on load."""

    _ALLOWED = frozenset(
        {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _cifar_batch(raw: bytes) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    # Python-2 pickles of {b"data": uint8 (n, 3072) channel-major, b"labels": [int]}.
    batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data.transpose(0, 2, 3, 1), np.asarray(batch[b"labels"], dtype=np.int64)


@DATASETS.register("cifar10", NoParams, split="official", source="cifar-10-batches-py.tar.gz")
def load_cifar10(*, test_fraction: float, seed: int, data_dir: Path) -> Dataset:
    """CIFAR-10, 50,000 / 10,000 32x32 RGB images (official split), pixels / 255.

    Reads ``<data_dir>/cifar-10-batches-py.tar.gz`` (the archive Keras caches) without
    extracting it: ``data_batch_1..5`` are the train set in order, ``test_batch`` the test set.
    """
    (path,) = _require("cifar10", data_dir, {"cifar-10-batches-py.tar.gz": _CIFAR10_ORIGIN})

    def read() -> Dataset:
        with tarfile.open(path, "r:gz") as archive:

            def member(name: str) -> bytes:
                handle = archive.extractfile(f"cifar-10-batches-py/{name}")
                if handle is None:
                    raise KeyError(f"cifar-10-batches-py/{name} is not a file")
                return handle.read()

            parts = [_cifar_batch(member(f"data_batch_{i}")) for i in range(1, 6)]
            test = _cifar_batch(member("test_batch"))
        train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        return _make_dataset("cifar10", train, test, scale=255.0, num_classes=10)

    return _read_or_fail("cifar10", path, read)


@lru_cache(maxsize=4)
def _load_cached(name: str, test_fraction: float, seed: int, data_dir: Path) -> Dataset:
    return DATASETS[name].target(test_fraction=test_fraction, seed=seed, data_dir=data_dir)


def load_dataset(
    name: str, *, test_fraction: float, seed: int, data_dir: str | None = None
) -> Dataset:
    """The registered dataset ``name``, split and scaled (cached per process, read-only arrays).

    ``test_fraction`` (in ``(0, 1)``) and ``seed`` choose the split of ``split="stratified"``
    datasets (``digits``); datasets with an official split ignore both, and one cache entry
    serves every seed. ``data_dir`` defaults to Keras's cache, ``~/.keras/datasets``.
    """
    entry = DATASETS[name]
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"data.test_fraction: got {test_fraction!r}; must be in (0, 1)")
    if entry.tags.get("split") == "official":
        test_fraction, seed = 0.5, 0  # unused by the loader; a fixed key avoids duplicate copies
    directory = Path(data_dir).expanduser() if data_dir is not None else KERAS_CACHE.expanduser()
    return _load_cached(name, test_fraction, seed, directory.resolve())

"""Dataset registry: image-classification sets as float32 ``(N, H, W, C)`` arrays in ``[0, 1]``.

``digits`` ships with scikit-learn and works offline. ``mnist``, ``fashion_mnist`` and ``cifar10``
read the files that ``tf.keras.datasets.<name>.load_data()`` caches in ``~/.keras/datasets``, in
the same layout, from ``data_dir`` or that directory. They are parsed here rather than through
``load_data`` because Keras downloads whenever a file is missing or its hash differs, and a
simulation host has no network: a missing file must fail in one line before any simulation,
naming the file and where to put it (``fedshield validate`` and ``run`` load the dataset before
Ray starts, so they do). Parsing is also safer than Keras's: ``mnist.npz`` is read
with ``allow_pickle=False`` and CIFAR's pickled batches through an unpickler that can only build
numpy arrays.

:func:`load_dataset` is cached per process: every simulated client in a worker calls it.

Each dataset is a :class:`DatasetSource` subclass that *declares* what it needs: the files it
reads (``files``) and whether ``test_fraction`` and the seed choose its split (``seeded_split``).
:func:`load_dataset` reads those declarations to check the files and to key its cache; it knows
no dataset by name.
"""

from __future__ import annotations

import pickle
import tarfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from common.data.file_formats import read_cifar_batch, read_idx
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
    natural_ids: NDArray[np.int64] | None = None
    """The natural partition of each training example (a FEMNIST writer, 0-based in
    flwr-datasets' order), for the ``natural`` scheme; ``None`` for datasets without one."""


class DatasetSource(ABC):
    """How one dataset is read: the files it needs and what chooses its train/test split."""

    files: ClassVar[Mapping[str, str]] = {}
    """Relative path under ``data_dir`` -> download URL of every file :meth:`read` opens."""
    seeded_split: ClassVar[bool] = False
    """True: ``test_fraction`` and the seed choose the split (they key the cache). False: an
    official split; both are ignored and one cached copy serves every seed."""

    @staticmethod
    @abstractmethod
    def read(paths: list[Path], *, test_fraction: float, seed: int) -> Dataset:
        """The dataset from ``paths`` (the declared ``files``, in order, all present)."""

    @classmethod
    def read_with(
        cls, params: Any, paths: list[Path], *, test_fraction: float, seed: int
    ) -> Dataset:
        """The dataset under its validated ``data.params``; :meth:`read` for a source without."""
        return cls.read(paths, test_fraction=test_fraction, seed=seed)


DATASETS: Registry[type[DatasetSource]] = Registry("dataset")
"""name -> Entry; ``Entry.target`` is the :class:`DatasetSource` subclass, tags ``split`` and
``source`` (for ``fedshield list``)."""

S = TypeVar("S", bound=type[DatasetSource])


def register_dataset(
    name: str, *, source: str, params: type[BaseModel] = NoParams
) -> Callable[[S], S]:
    """Register ``name`` with the model of its ``data.params``; its split becomes a tag."""

    def decorate(cls: S) -> S:
        split = "stratified" if cls.seeded_split else "official"
        DATASETS.register(name, params, split=split, source=source)(cls)
        return cls

    return decorate


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
    natural_ids: NDArray[np.int64] | None = None,
) -> Dataset:
    """Scale pixels by ``1/scale``, flatten labels to int64 and freeze every array."""
    x_train, x_test = _images(train[0], scale), _images(test[0], scale)
    y_train = np.asarray(train[1], dtype=np.int64).ravel()
    y_test = np.asarray(test[1], dtype=np.int64).ravel()
    for array in (x_train, y_train, x_test, y_test, natural_ids):
        if array is not None:
            array.setflags(write=False)
    shape = tuple(int(d) for d in x_train.shape[1:])
    return Dataset(x_train, y_train, x_test, y_test, num_classes, shape, name, natural_ids)


def dataset_files(name: str, data_dir: Path) -> list[Path]:
    """Paths of the files dataset ``name`` declares, under ``data_dir``; one-line error if any
    is missing (naming the files, the directory and where to download them)."""
    files = DATASETS[name].target.files
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


@register_dataset("digits", source="scikit-learn (offline)")
class Digits(DatasetSource):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), pixels / 16.

    Split: ``train_test_split(stratify=y, test_size=test_fraction, random_state=seed)``, so the
    test set has ``ceil(1797 * test_fraction)`` images (0.2 -> 1437 / 360) and every class keeps
    its share. No files: the data ships with scikit-learn.
    """

    seeded_split = True

    @staticmethod
    def read(paths: list[Path], *, test_fraction: float, seed: int) -> Dataset:
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
        return _make_dataset(
            "digits", (x_train, y_train), (x_test, y_test), scale=16.0, num_classes=10
        )


@register_dataset("mnist", source="mnist.npz (Keras cache)")
class Mnist(DatasetSource):
    """MNIST, 60,000 / 10,000 28x28 grayscale digits (official split), pixels / 255.

    Reads ``<data_dir>/mnist.npz`` (arrays ``x_train, y_train, x_test, y_test``), the file
    ``tf.keras.datasets.mnist.load_data()`` caches.
    """

    files = {"mnist.npz": _KERAS_ORIGIN + "mnist.npz"}

    @staticmethod
    def read(paths: list[Path], *, test_fraction: float, seed: int) -> Dataset:
        with np.load(paths[0], allow_pickle=False) as arrays:
            train = (arrays["x_train"], arrays["y_train"])
            test = (arrays["x_test"], arrays["y_test"])
        return _make_dataset("mnist", train, test, scale=255.0, num_classes=10)


@register_dataset("fashion_mnist", source="fashion-mnist/ (Keras cache)")
class FashionMnist(DatasetSource):
    """Fashion-MNIST, 60,000 / 10,000 28x28 grayscale clothing images (official split), / 255.

    Reads the four gzipped IDX files of ``<data_dir>/fashion-mnist/`` that
    ``tf.keras.datasets.fashion_mnist.load_data()`` caches.
    """

    files = {
        f"fashion-mnist/{f}": _KERAS_ORIGIN + f
        for f in (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        )
    }

    @staticmethod
    def read(paths: list[Path], *, test_fraction: float, seed: int) -> Dataset:
        train_x, train_y, test_x, test_y = paths
        y_train, y_test = read_idx(train_y, 8), read_idx(test_y, 8)
        x_train = read_idx(train_x, 16).reshape(y_train.size, 28, 28)
        x_test = read_idx(test_x, 16).reshape(y_test.size, 28, 28)
        return _make_dataset(
            "fashion_mnist", (x_train, y_train), (x_test, y_test), scale=255.0, num_classes=10
        )


@register_dataset("cifar10", source="cifar-10-batches-py.tar.gz")
class Cifar10(DatasetSource):
    """CIFAR-10, 50,000 / 10,000 32x32 RGB images (official split), pixels / 255.

    Reads ``<data_dir>/cifar-10-batches-py.tar.gz`` (the archive Keras caches) without
    extracting it: ``data_batch_1..5`` are the train set in order, ``test_batch`` the test set.
    """

    files = {"cifar-10-batches-py.tar.gz": _CIFAR10_ORIGIN}

    @staticmethod
    def read(paths: list[Path], *, test_fraction: float, seed: int) -> Dataset:
        with tarfile.open(paths[0], "r:gz") as archive:

            def member(name: str) -> bytes:
                handle = archive.extractfile(f"cifar-10-batches-py/{name}")
                if handle is None:
                    raise KeyError(f"cifar-10-batches-py/{name} is not a file")
                return handle.read()

            parts = [read_cifar_batch(member(f"data_batch_{i}")) for i in range(1, 6)]
            test = read_cifar_batch(member("test_batch"))
        train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        return _make_dataset("cifar10", train, test, scale=255.0, num_classes=10)


_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError, tarfile.TarError)


@lru_cache(maxsize=4)
def _load_cached(
    name: str, test_fraction: float, seed: int, data_dir: Path, params_json: str
) -> Dataset:
    paths = dataset_files(name, data_dir)
    entry = DATASETS[name]
    params = entry.params.model_validate_json(params_json)
    try:
        return entry.target.read_with(params, paths, test_fraction=test_fraction, seed=seed)
    except ConfigError:
        raise
    # A truncated or foreign file must fail in one line like a missing one, not with a traceback.
    except _READ_ERRORS as err:
        where = paths[0] if len(paths) == 1 else data_dir
        raise ConfigError(f"dataset {name!r}: cannot read {where}: {err}") from None


def load_dataset(
    name: str,
    *,
    test_fraction: float,
    seed: int,
    data_dir: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Dataset:
    """The registered dataset ``name``, split and scaled (cached per process, read-only arrays).

    ``test_fraction`` (in ``(0, 1)``) and ``seed`` choose the split of a dataset that declares
    ``seeded_split``; others ignore both, and one cache entry serves every seed. ``data_dir``
    defaults to Keras's cache, ``~/.keras/datasets``. ``params`` are the dataset's
    ``data.params`` (validated against its registered model; none for most datasets).
    """
    source = DATASETS[name].target
    checked = DATASETS.parse_params(name, params or {}, "data.params")
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"data.test_fraction: got {test_fraction!r}; must be in (0, 1)")
    if not source.seeded_split:
        test_fraction, seed = 0.5, 0  # unused by the source; a fixed key avoids duplicate copies
    directory = Path(data_dir).expanduser() if data_dir is not None else KERAS_CACHE.expanduser()
    return _load_cached(name, test_fraction, seed, directory.resolve(), checked.model_dump_json())


# Registered on import of this module, like the datasets above (the module imports from here).
from common.data import hub, synthetic  # noqa: E402, F401

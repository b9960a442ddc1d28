"""Parity with flwr-datasets 0.6.0: same seed, same draws, same parts, index for index.

flwr-datasets cannot be imported next to TensorFlow 2.15 here: its ``datasets`` dependency needs
``pyarrow``, whose wheel requires NumPy 2. Its partitioners only call five table methods, so the
test runs *their* code on a small numpy table that provides them, registered as
``datasets.Dataset`` for the duration of the module (flwr-datasets checks ``isinstance`` against
it; the other names it imports from ``datasets`` are not called by the partitioners).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from fedshield.errors import ConfigError
from fedshield.partitioners import partition
from fedshield.seeding import derive_seed


class _LabelTable:
    """The part of ``datasets.Dataset`` the partitioners use, over one label column."""

    def __init__(self, labels: NDArray[np.int64], rows: NDArray[np.int64] | None = None) -> None:
        self.labels = labels
        self.rows = np.arange(labels.size) if rows is None else rows  # original row of each row
        self.num_rows = labels.size

    def __len__(self) -> int:
        return self.num_rows

    def unique(self, column: str) -> list[int]:
        return [int(c) for c in np.unique(self.labels)]

    def __getitem__(self, column: str) -> NDArray[np.int64]:
        return self.labels

    def select(self, indices: list[int]) -> NDArray[np.int64]:
        return np.sort(self.rows[np.asarray(indices, dtype=np.int64)])

    def sort(self, column: str) -> _LabelTable:
        order = np.argsort(self.labels, kind="stable")  # Arrow's sort_indices is stable too
        return _LabelTable(self.labels[order], self.rows[order])


def _not_available(*args: object, **kwargs: object) -> None:
    raise RuntimeError("the Hugging Face datasets package is not importable in this environment")


def _stand_in_datasets() -> tuple[ModuleType, ModuleType]:
    """``datasets`` and ``datasets.load`` with the names flwr-datasets imports at import time."""
    package, load = ModuleType("datasets"), ModuleType("datasets.load")
    load.DatasetNotFoundError = type("DatasetNotFoundError", (Exception,), {})  # type: ignore[attr-defined]
    for name, value in {
        "Dataset": _LabelTable,
        "DatasetDict": dict,
        "concatenate_datasets": _not_available,
        "load_dataset": _not_available,
        "load": load,
    }.items():
        setattr(package, name, value)
    return package, load


def _drop_modules(prefix: str) -> None:
    for name in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def flwr_partitioner() -> Iterator[ModuleType]:
    """flwr-datasets' ``partitioner`` package, imported with or without the real ``datasets``."""
    try:
        real = importlib.import_module("flwr_datasets.partitioner")
    except ImportError:
        _drop_modules("flwr_datasets")  # keep no half-imported package around
    else:
        yield real
        return
    saved = {m: sys.modules[m] for m in list(sys.modules) if m.split(".")[0] == "datasets"}
    _drop_modules("datasets")
    sys.modules["datasets"], sys.modules["datasets.load"] = _stand_in_datasets()
    try:
        yield importlib.import_module("flwr_datasets.partitioner")
    finally:
        _drop_modules("flwr_datasets")
        _drop_modules("datasets")
        sys.modules.update(saved)


def _flwr_parts(partitioner: Any, labels: NDArray[np.int64], num_clients: int) -> list[Any]:
    partitioner.dataset = _LabelTable(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its "min_partition_size not satisfied" retry warnings
        return [partitioner.load_partition(k) for k in range(num_clients)]


@pytest.mark.parametrize("trial", range(12))
def test_dirichlet_matches_flwr_datasets(flwr_partitioner: ModuleType, trial: int) -> None:
    rng = np.random.default_rng(trial)
    labels = rng.integers(0, 10, size=int(rng.integers(300, 1500))).astype(np.int64)
    num_clients = int(rng.integers(2, 15))
    alpha = float(rng.choice([0.05, 0.3, 1.0, 10.0]))
    min_size = int(rng.choice([0, 10, 40]))
    reference = flwr_partitioner.DirichletPartitioner(
        num_partitions=num_clients,
        partition_by="label",
        alpha=alpha,
        min_partition_size=min_size,
        self_balancing=False,
        shuffle=False,
        seed=derive_seed(trial, "partition", "dirichlet"),
    )
    params = {"alpha": alpha, "min_partition_size": min_size}
    try:
        expected = _flwr_parts(reference, labels, num_clients)
    except ValueError:  # flwr-datasets gave up after its 11 draws: so must fedshield
        with pytest.raises(ConfigError, match="not reached in 11 Dirichlet draws"):
            partition(
                labels, num_clients=num_clients, scheme="dirichlet", params=params, seed=trial
            )
        return
    ours = partition(labels, num_clients=num_clients, scheme="dirichlet", params=params, seed=trial)
    assert [p.tolist() for p in ours] == [e.tolist() for e in expected]


@pytest.mark.parametrize("trial", range(12))
def test_shard_matches_flwr_datasets_when_shards_divide_the_data(
    flwr_partitioner: ModuleType, trial: int
) -> None:
    rng = np.random.default_rng(100 + trial)
    num_clients, shards = int(rng.integers(2, 15)), int(rng.integers(1, 4))
    shard_size = int(rng.integers(3, 30))
    labels = rng.integers(0, 10, size=num_clients * shards * shard_size).astype(np.int64)
    reference = flwr_partitioner.ShardPartitioner(
        num_partitions=num_clients,
        partition_by="label",
        num_shards_per_partition=shards,
        shuffle=False,
        seed=derive_seed(trial, "partition", "shard"),
    )
    expected = _flwr_parts(reference, labels, num_clients)
    ours = partition(
        labels,
        num_clients=num_clients,
        scheme="shard",
        params={"shards_per_client": shards},
        seed=trial,
    )
    assert [p.tolist() for p in ours] == [e.tolist() for e in expected]

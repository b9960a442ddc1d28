"""Who holds what: the scenario's dataset, each client's shard, the malicious set, the root set.

Loading and partitioning are cached per worker process (they are pure functions of the scenario's
data section and seed); nothing per client is kept in module state beyond that cache.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from common.attack_schedule import select_malicious
from common.data.datasets import Dataset, load_dataset
from common.data.partitioners import PARTITIONERS, partition
from common.errors import ConfigError
from common.schema import DataSpec, Scenario
from common.seeding import derive_rng


def dataset_of(scenario: Scenario) -> Dataset:
    """The scenario's dataset (cached by :func:`common.data.datasets.load_dataset`)."""
    data = scenario.data
    return load_dataset(
        data.dataset,
        test_fraction=data.test_fraction,
        seed=scenario.seed,
        data_dir=data.data_dir,
        params=data.params,
    )


def _partition_keys(dataset: Dataset, data: DataSpec) -> NDArray[np.int64]:
    """What the scheme deals by: the class labels, or the natural ids when its ``keys`` says."""
    if PARTITIONERS[data.partition.scheme].tags.get("keys") != "natural_ids":
        return dataset.y_train
    if dataset.natural_ids is None:
        raise ConfigError(
            f"data.partition.scheme: got {data.partition.scheme!r}; dataset {data.dataset!r} "
            "has no natural partition (the hub dataset has one)"
        )
    return dataset.natural_ids


@lru_cache(maxsize=8)
def _partitions(data_json: str, seed: int) -> tuple[NDArray[np.int64], ...]:
    # Keyed by JSON: the data section holds dicts, so the model itself is not hashable.
    data = DataSpec.model_validate_json(data_json)
    dataset = load_dataset(
        data.dataset,
        test_fraction=data.test_fraction,
        seed=seed,
        data_dir=data.data_dir,
        params=data.params,
    )
    return tuple(
        partition(
            _partition_keys(dataset, data),
            num_clients=data.num_clients,
            scheme=data.partition.scheme,
            params=data.partition.params,
            seed=seed,
        )
    )


def partitions_of(scenario: Scenario) -> tuple[NDArray[np.int64], ...]:
    """Train-set indices of every client (deterministic in the scenario seed)."""
    return _partitions(scenario.data.model_dump_json(), scenario.seed)


def malicious_clients(scenario: Scenario) -> frozenset[int]:
    """Partition ids of the malicious clients (ground truth: scenario and metrics only)."""
    return select_malicious(scenario.data.num_clients, scenario.attack.malicious, scenario.seed)


def client_shard(
    scenario: Scenario, partition_id: int
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """``(x, y)`` of one client, as the partitioner dealt it (before any data attack)."""
    dataset = dataset_of(scenario)
    indices = partitions_of(scenario)[partition_id]
    return dataset.x_train[indices], dataset.y_train[indices]


def root_indices(scenario: Scenario, dataset: Dataset) -> NDArray[np.int64]:
    """The sorted training-split indices of the server's root set, drawn with the scenario seed.

    Raises a one-line :class:`ConfigError` if the split is smaller than ``defense.root_size``
    (the scenario validator calls this too, so the error comes before Ray starts).
    """
    size, available = scenario.defense.root_size, len(dataset.y_train)
    if size > available:
        raise ConfigError(
            f"defense.root_size: got {size}; the {dataset.name} training split has only "
            f"{available} examples"
        )
    chosen = derive_rng(scenario.seed, "root").choice(available, size=size, replace=False)
    return np.sort(chosen).astype(np.int64)

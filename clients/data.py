"""A client's training shard: the dataset, split by the scenario's partitioner, poisoned if the
client is malicious and its attack is a data attack.

Loading and partitioning are cached per worker process (they are pure functions of the scenario's
data section and seed); nothing per client is kept in module state beyond that cache.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from attacks import get_attack
from attacks.base import DataAttack
from attacks.schedule import select_malicious
from fedshield.datasets import Dataset, load_dataset
from fedshield.errors import ConfigError
from fedshield.partitioners import partition
from fedshield.seeding import derive_rng
from scenarios.schema import DataSpec, Scenario


def dataset_of(scenario: Scenario) -> Dataset:
    """The scenario's dataset (cached by :func:`fedshield.datasets.load_dataset`)."""
    data = scenario.data
    return load_dataset(
        data.dataset, test_fraction=data.test_fraction, seed=scenario.seed, data_dir=data.data_dir
    )


@lru_cache(maxsize=8)
def _partitions(data_json: str, seed: int) -> tuple[NDArray[np.int64], ...]:
    # Keyed by JSON: the data section holds dicts, so the model itself is not hashable.
    data = DataSpec.model_validate_json(data_json)
    labels = load_dataset(
        data.dataset, test_fraction=data.test_fraction, seed=seed, data_dir=data.data_dir
    ).y_train
    return tuple(
        partition(
            labels,
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
    scenario: Scenario, partition_id: int, *, poisoned: bool
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """``(x, y)`` of one client; with ``poisoned`` the scenario's data attack is applied.

    The poisoned subset is drawn from a generator keyed by (seed, client), so it is the same
    every round and on every worker.
    """
    dataset = dataset_of(scenario)
    indices = partitions_of(scenario)[partition_id]
    x, y = dataset.x_train[indices], dataset.y_train[indices]
    if not poisoned:
        return x, y
    attack = get_attack(scenario.attack.type, **scenario.attack.params)
    if not isinstance(attack, DataAttack):
        raise ConfigError(f"attack.type: {scenario.attack.type!r} is not a data-poisoning attack")
    result = attack.poison(
        x, y, num_classes=dataset.num_classes, rng=derive_rng(scenario.seed, "poison", partition_id)
    )
    return result.x, result.y

"""Parity with flwr-datasets 0.6.0: same seed, same draws, same parts, index for index.

Our partitioners are our own numpy code (flwr-datasets' IidPartitioner cuts unshuffled blocks
and its ShardPartitioner drops a remainder); these tests run flwr-datasets' real partitioners
on a real ``datasets.Dataset`` of labels and check that Dirichlet and shard agree exactly.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from datasets import Dataset
from flwr_datasets import partitioner as flwr_partitioner
from numpy.typing import NDArray

from common.data.partitioners import partition
from common.errors import ConfigError
from common.seeding import derive_seed


def _flwr_parts(reference: Any, labels: NDArray[np.int64], num_clients: int) -> list[list[int]]:
    """Original row indices of each flwr-datasets partition, sorted."""
    reference.dataset = Dataset.from_dict({"label": labels, "row": np.arange(labels.size)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its "min_partition_size not satisfied" retry warnings
        return [sorted(reference.load_partition(k)["row"]) for k in range(num_clients)]


@pytest.mark.parametrize("trial", range(12))
def test_dirichlet_matches_flwr_datasets(trial: int) -> None:
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
    assert [p.tolist() for p in ours] == expected


@pytest.mark.parametrize("trial", range(12))
def test_shard_matches_flwr_datasets_when_shards_divide_the_data(trial: int) -> None:
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
    assert [p.tolist() for p in ours] == expected

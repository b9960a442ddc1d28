"""Honest federated rounds replayed in-process (no Ray): the deltas a real run's gate sees.

Each client trains exactly as ``clients/app.py`` does (the scenario's compiled model, its
seeded batch plan), and the server averages with sample-count weights (FedAvg). The result is
the list of (global weights, client weights, shard sizes) per round, recorded once per session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.data.shards import client_shard, dataset_of
from common.learning.models import build_model
from common.learning.training import compiled_model, train_locally
from common.schema import Scenario
from common.seeding import derive_seed
from scenarios.loader import load_scenario

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class HonestRound:
    """One round as the gate receives it: the global model and every client's new weights."""

    global_arrays: list[F32]
    client_arrays: list[list[F32]]
    shard_sizes: list[int]


def honest_rounds(scenario: Scenario, rounds: int) -> list[HonestRound]:
    """Replay ``rounds`` FedAvg rounds of ``scenario`` with every client honest."""
    dataset = dataset_of(scenario)
    # The server's initial model, drawn as server/app.py draws it.
    tf.keras.utils.set_random_seed(derive_seed(scenario.seed, "init"))
    initial = build_model(scenario.model.name, dataset.input_shape, dataset.num_classes)
    global_arrays = [np.asarray(w, np.float32) for w in initial.get_weights()]
    model = compiled_model(scenario, dataset.input_shape, dataset.num_classes, dp=False)
    shards = [client_shard(scenario, p) for p in range(scenario.data.num_clients)]
    recorded = []
    for server_round in range(1, rounds + 1):
        clients = [
            train_locally(
                model,
                global_arrays,
                x,
                y,
                scenario=scenario,
                seed=derive_seed(scenario.seed, "train", server_round, partition),
                dp=False,
            ).weights
            for partition, (x, y) in enumerate(shards)
        ]
        sizes = [len(y) for _, y in shards]
        recorded.append(HonestRound(global_arrays, clients, sizes))
        weights = np.asarray(sizes, np.float64) / sum(sizes)
        global_arrays = [
            np.asarray(sum(w * c[i] for w, c in zip(weights, clients, strict=True)), np.float32)
            for i in range(len(global_arrays))
        ]
    return recorded


def quickstart_rounds(seed: int, rounds: int, partition: str = "iid") -> list[HonestRound]:
    """Honest rounds of ``quickstart.toml`` with another seed and partition scheme."""
    overrides = [f"seed={seed}", f"data.partition.scheme={partition}"]
    if partition == "dirichlet":
        overrides.append("data.partition.params={alpha = 0.5}")
    return honest_rounds(load_scenario("scenarios/quickstart.toml", overrides), rounds)

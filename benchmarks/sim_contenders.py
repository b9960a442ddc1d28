"""The two peers of ``benchmarks/simulation.py``, each run as its own process.

Both train the quickstart workload exactly as a researcher would write it without fedshield:
scikit-learn's digits with fedshield's 80/20 split and IID partition of 10 clients (same data),
the 64-unit MLP, 2 local epochs of batch 32, SGD 0.1 momentum 0.9, FedAvg weighted by shard
size, 10 rounds, the global model evaluated on the test split after every round. Each prints
``ROUND k ACC`` as the round's evaluation ends (the parent timestamps the lines).

    python benchmarks/sim_contenders.py plain     # single process: Keras fit per client
    python benchmarks/sim_contenders.py flower    # bare Flower 1.23: NumPyClient + FedAvg
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common.data.shards import dataset_of, partitions_of  # noqa: E402
from scenarios.loader import load_scenario  # noqa: E402

SCENARIO = load_scenario("quickstart", [])
Weights = list[np.ndarray[Any, Any]]
_MODEL: dict[str, tf.keras.Model] = {}


def model() -> tf.keras.Model:
    """One compiled MLP per process (the peers cache it per actor, as fedshield does)."""
    if "mlp" not in _MODEL:
        data = dataset_of(SCENARIO)
        net = tf.keras.Sequential(
            [
                tf.keras.layers.InputLayer(input_shape=data.input_shape),
                tf.keras.layers.Flatten(),
                tf.keras.layers.Dense(64, activation="relu"),
                tf.keras.layers.Dense(data.num_classes, activation="softmax"),
            ]
        )
        net.compile(
            optimizer=tf.keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        _MODEL["mlp"] = net
    return _MODEL["mlp"]


def fit(weights: Weights, partition_id: int) -> tuple[Weights, int]:
    """One client's round: load the global weights, fresh optimizer state, ``fit`` 2 epochs."""
    data, net = dataset_of(SCENARIO), model()
    idx = partitions_of(SCENARIO)[partition_id]
    net.set_weights(weights)
    for variable in net.optimizer.variables:
        variable.assign(tf.zeros_like(variable))
    net.fit(data.x_train[idx], data.y_train[idx], epochs=2, batch_size=32, verbose=0)
    return net.get_weights(), len(idx)


def evaluate(server_round: int, weights: Weights) -> float:
    data, net = dataset_of(SCENARIO), model()
    net.set_weights(weights)
    _, accuracy = net.evaluate(data.x_test, data.y_test, batch_size=512, verbose=0)
    if server_round > 0:
        print(f"ROUND {server_round} {accuracy:.4f}", flush=True)
    return float(accuracy)


def fedavg(results: list[tuple[Weights, int]]) -> Weights:
    total = sum(n for _, n in results)
    return [
        sum(w[i] * (n / total) for w, n in results).astype(np.float32)
        for i in range(len(results[0][0]))
    ]


def plain() -> None:
    tf.keras.utils.set_random_seed(SCENARIO.seed)
    weights = model().get_weights()
    for server_round in range(1, SCENARIO.rounds + 1):
        weights = fedavg([fit(weights, p) for p in range(SCENARIO.data.num_clients)])
        evaluate(server_round, weights)


def flower() -> None:
    from flwr.client import ClientApp, NumPyClient
    from flwr.common import Context, ndarrays_to_parameters
    from flwr.common.logger import FLOWER_LOGGER
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.simulation import run_simulation

    FLOWER_LOGGER.setLevel(logging.WARNING)

    class Client(NumPyClient):  # type: ignore[misc]
        def __init__(self, partition_id: int) -> None:
            self.partition_id = partition_id

        def fit(self, parameters: Weights, config: Any) -> tuple[Weights, int, dict[str, Any]]:
            weights, n = fit(parameters, self.partition_id)
            return weights, n, {}

    def client_fn(context: Context) -> Any:
        return Client(int(context.node_config["partition-id"])).to_client()

    def server_fn(context: Context) -> ServerAppComponents:
        tf.keras.utils.set_random_seed(SCENARIO.seed)
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_available_clients=SCENARIO.data.num_clients,
            initial_parameters=ndarrays_to_parameters(model().get_weights()),
            evaluate_fn=lambda r, w, c: (0.0, {"accuracy": evaluate(r, w)}),
        )
        return ServerAppComponents(strategy=strategy, config=ServerConfig(SCENARIO.rounds))

    run_simulation(
        server_app=ServerApp(server_fn=server_fn),
        client_app=ClientApp(client_fn=client_fn),
        num_supernodes=SCENARIO.data.num_clients,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0},
            "init_args": {
                "num_cpus": os.cpu_count() or 1,
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.ERROR,
            },
        },
    )


if __name__ == "__main__":
    {"plain": plain, "flower": flower}[sys.argv[1]]()

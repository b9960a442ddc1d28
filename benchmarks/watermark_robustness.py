"""How much of the WAFFLE watermark survives what a model thief would do.

Owner: the quickstart federation (digits, 10 IID clients, MLP, FedAvg, 10 rounds, SGD 0.1 with
momentum 0.9, 2 local epochs), replayed in-process with the server re-embedding the watermark
after every aggregation, exactly as ``server/guard.py`` does (round 0 included).

Thief: holds the final model but not the key (it never sees the trigger set) and wants a model
that still classifies digits. It knows the training recipe and has clean labelled data:
* fine-tunes for 10 epochs (batch 32, SGD momentum 0.9) on 10 %, 30 % or 100 % of the training
  split, at the training learning rate 0.1 and at 0.01;
* or, beyond that, fine-tunes on all of it for 30 epochs at 0.1;
* prunes the 20-60 % smallest-magnitude kernel weights (global threshold; biases kept).
Two embeddings: plain WAFFLE (retrain until the target trigger accuracy, then stop) and the
shipped default, ``integrity.watermark.extra_epochs`` more epochs after the target every round.
Each row reports trigger accuracy (verification threshold 0.5; chance 0.1) and clean test
accuracy (the federation's own is on the first line). Every row is one seeded run.

Run (2 CPU cores, a few minutes):
  TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/watermark_robustness.py \
      > benchmarks/results/watermark_robustness.txt
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tensorflow as tf

from common.data.shards import client_shard, dataset_of
from common.learning.models import build_model
from common.learning.training import compiled_model, train_locally
from common.schema import Scenario
from common.seeding import derive_seed
from scenarios.loader import load_scenario
from server.integrity.watermark import WatermarkKey, embed, watermark_accuracy

Weights = list[np.ndarray]
ROUNDS = 10
KEY_SEED = 20240601  # a fixed key makes the benchmark repeatable; a run draws its own


def federate(
    scenario: Scenario, key: WatermarkKey, embed_round: Callable[[tf.keras.Model], int]
) -> Weights:
    """FedAvg for ``ROUNDS`` rounds; the server re-embeds after round 0 and every aggregation."""
    dataset = dataset_of(scenario)
    tf.keras.utils.set_random_seed(derive_seed(scenario.seed, "init"))
    server = build_model(scenario.model.name, dataset.input_shape, dataset.num_classes)
    embed_round(server)
    worker = compiled_model(scenario, dataset.input_shape, dataset.num_classes, dp=False)
    shards = [client_shard(scenario, p) for p in range(scenario.data.num_clients)]
    sizes = np.array([len(y) for _, y in shards], dtype=np.float64)
    for server_round in range(1, ROUNDS + 1):
        base = server.get_weights()
        clients = [
            train_locally(worker, base, x, y, scenario=scenario, dp=False,
                          seed=derive_seed(scenario.seed, "train", server_round, p)).weights
            for p, (x, y) in enumerate(shards)
        ]  # fmt: skip
        server.set_weights(
            [
                sum(n * c[i] for n, c in zip(sizes / sizes.sum(), clients, strict=True))
                for i in range(len(base))
            ]
        )
        embed_round(server)
    return [np.asarray(w) for w in server.get_weights()]


def fine_tune(
    model: tf.keras.Model,
    weights: Weights,
    x: np.ndarray,
    y: np.ndarray,
    lr: float,
    epochs: int = 10,
) -> None:
    model.set_weights(weights)
    model.compile(tf.keras.optimizers.SGD(learning_rate=lr, momentum=0.9),
                  tf.keras.losses.SparseCategoricalCrossentropy())  # fmt: skip
    tf.keras.utils.set_random_seed(7)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, shuffle=True)


def prune(weights: Weights, fraction: float) -> Weights:
    kernels = np.concatenate([np.abs(w).ravel() for w in weights if w.ndim > 1])
    threshold = np.quantile(kernels, fraction)
    return [
        np.where(np.abs(w) <= threshold, 0.0, w).astype(np.float32) if w.ndim > 1 else w
        for w in weights
    ]


def accuracies(
    model: tf.keras.Model, key: WatermarkKey, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[float, float]:
    predictions = np.argmax(model(x_test, training=False).numpy(), axis=1)
    return watermark_accuracy(model, key), float(np.mean(predictions == y_test))


def attack_table(
    scenario: Scenario, key: WatermarkKey, owner: Weights
) -> list[tuple[str, float, float]]:
    dataset = dataset_of(scenario)
    model = build_model(scenario.model.name, dataset.input_shape, dataset.num_classes)
    model.set_weights(owner)
    rows = [("none (the owner's model)", *accuracies(model, key, dataset.x_test, dataset.y_test))]
    order = np.random.default_rng(11).permutation(len(dataset.y_train))
    for fraction in (0.1, 0.3, 1.0):
        chosen = order[: int(round(fraction * len(order)))]
        for lr in (0.1, 0.01):
            fine_tune(model, owner, dataset.x_train[chosen], dataset.y_train[chosen], lr)
            name = f"fine-tune {len(chosen)} ex ({fraction:.0%}), lr {lr}"
            rows.append((name, *accuracies(model, key, dataset.x_test, dataset.y_test)))
    # A thief with all the data and 3x the epochs: REFIT (Chen et al., AsiaCCS 2021) shows that a
    # long enough fine-tuning schedule removes any backdoor-based watermark.
    fine_tune(model, owner, dataset.x_train, dataset.y_train, 0.1, epochs=30)
    rows.append(
        (
            "fine-tune 100%, lr 0.1, 30 epochs",
            *accuracies(model, key, dataset.x_test, dataset.y_test),
        )
    )
    for fraction in (0.2, 0.4, 0.6):
        model.set_weights(prune(owner, fraction))
        rows.append(
            (
                f"prune {fraction:.0%} smallest",
                *accuracies(model, key, dataset.x_test, dataset.y_test),
            )
        )
    return rows


def variants(scenario: Scenario) -> dict[str, tuple[WatermarkKey, Callable[[tf.keras.Model], int]]]:
    """Plain WAFFLE (stop at the target) and the longer schedule this project ships."""
    wm = scenario.integrity.watermark
    dataset = dataset_of(scenario)
    key = WatermarkKey(seed=KEY_SEED, num_triggers=wm.num_triggers, input_shape=dataset.input_shape,
                       num_classes=dataset.num_classes, model_name=scenario.model.name)  # fmt: skip

    def waffle(extra: int) -> Callable[[tf.keras.Model], int]:
        return lambda m: embed(
            m, key, max_epochs=wm.max_server_epochs, extra_epochs=extra,
            target_accuracy=wm.target_accuracy, learning_rate=wm.learning_rate,
        )  # fmt: skip

    return {
        f"stop at {wm.target_accuracy} + {extra} extra epochs per round"
        + (" (plain WAFFLE)" if extra == 0 else ""): (key, waffle(extra))
        for extra in (0, wm.extra_epochs)
    }


def main() -> None:
    scenario = load_scenario("scenarios/integrity_watermark.toml")
    tf.config.threading.set_inter_op_parallelism_threads(2)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    print("fedshield watermark robustness benchmark (quickstart federation, 10 rounds, seed 42)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, TensorFlow {tf.__version__}")  # fmt: skip
    for name, (key, embed_round) in variants(scenario).items():
        start = time.perf_counter()
        owner = federate(scenario, key, embed_round)
        rows = attack_table(scenario, key, owner)
        print(f"\nembedding: {name}  ({time.perf_counter() - start:.0f} s)")
        print(f"{'attack':<36}{'trigger acc':>12}{'test acc':>10}{'verdict':>12}")
        for attack, trigger, test in rows:
            verdict = (
                "owned" if trigger >= scenario.integrity.watermark.verify_threshold else "REMOVED"
            )
            print(f"{attack:<36}{trigger:>12.2f}{test:>10.3f}{verdict:>12}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

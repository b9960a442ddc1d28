"""The worker-side model cache: one compiled model per key, no optimizer state across clients."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from common.data.shards import client_shard, partitions_of
from common.learning.training import compiled_model, reset_optimizer, train_locally
from scenarios.loader import load_scenario


def _scenario(*overrides: str):  # type: ignore[no-untyped-def]
    return load_scenario("quickstart", ['train.optimizer="adam"', *overrides])


def test_model_is_built_once_per_key_and_rebuilt_when_the_key_changes() -> None:
    s = _scenario()
    first = compiled_model(s, (8, 8, 1), 10, dp=False)
    assert compiled_model(s, (8, 8, 1), 10, dp=False) is first
    other = compiled_model(_scenario("train.learning_rate=0.01"), (8, 8, 1), 10, dp=False)
    assert other is not first


def test_optimizer_state_does_not_leak_between_clients() -> None:
    s = _scenario()
    model = compiled_model(s, (8, 8, 1), 10, dp=False)
    start = [np.zeros_like(w) + 0.01 for w in model.get_weights()]
    x, y = client_shard(s, 0)
    train_locally(model, start, x, y, scenario=s, seed=1, dp=False)
    assert any(np.abs(v.numpy()).sum() > 0 for v in model.optimizer.variables[1:])  # Adam moments
    reset_optimizer(model)
    assert all(np.abs(v.numpy()).sum() == 0 for v in model.optimizer.variables)


def test_a_clients_result_does_not_depend_on_who_the_worker_served_before() -> None:
    s = _scenario()
    model = compiled_model(s, (8, 8, 1), 10, dp=False)
    start = [np.asarray(w) for w in model.get_weights()]
    x0, y0 = client_shard(s, 0)
    x1, y1 = client_shard(s, 1)
    alone = train_locally(model, start, x1, y1, scenario=s, seed=7, dp=False)
    train_locally(model, start, x0, y0, scenario=s, seed=3, dp=False)  # another client first
    after = train_locally(model, start, x1, y1, scenario=s, seed=7, dp=False)
    for a, b in zip(alone.weights, after.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert alone.local_steps == 2 * int(np.ceil(len(y1) / s.train.batch_size))
    assert len(partitions_of(s)) == 10
    assert isinstance(model, tf.keras.Model)


def test_dp_noise_does_not_depend_on_who_the_worker_served_before() -> None:
    # Seed-derived noise (the switch): a client's round replays whatever the actor served before.
    s = load_scenario("dp_local", ["dp.reproducible_noise=true"])
    model = compiled_model(s, (8, 8, 1), 10, dp=True)
    start = [np.asarray(w) for w in model.get_weights()]
    x0, y0 = client_shard(s, 0)
    x1, y1 = client_shard(s, 1)
    alone = train_locally(model, start, x1, y1, scenario=s, seed=7, dp=True)
    train_locally(model, start, x0, y0, scenario=s, seed=3, dp=True)
    after = train_locally(model, start, x1, y1, scenario=s, seed=7, dp=True)
    other = train_locally(model, start, x1, y1, scenario=s, seed=8, dp=True)
    for a, b in zip(alone.weights, after.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(alone.weights, other.weights, strict=True))

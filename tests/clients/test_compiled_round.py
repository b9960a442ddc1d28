"""The compiled local round gives the weights of the ``train_on_batch`` loop it replaced.

The reference below is the old loop of ``common/learning/training.py`` kept verbatim: same seeded
batch plan, one ``train_on_batch`` per step. For a fixed seed the compiled round must produce
the same weights bit for bit (and the same mean loss), without DP and with DP-SGD (seed-derived
noise, Poisson batches including empty noise-only steps, shuffle batches with weight decay).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import tensorflow as tf
from numpy.typing import NDArray

from common.data.shards import client_shard
from common.learning.batching import batch_plan
from common.learning.local_round import run_plan, sgd_step
from common.learning.training import (
    compiled_model,
    dp_seed_sequence,
    reset_optimizer,
    train_locally,
)
from common.schema import Scenario
from scenarios.loader import load_scenario


def _reference(
    model: tf.keras.Model,
    weights: Sequence[NDArray[np.float32]],
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    *,
    scenario: Scenario,
    seed: int,
    dp: bool,
) -> tuple[list[NDArray[np.float32]], float, int]:
    """The pre-compilation training loop: (weights, mean loss of non-empty steps, steps)."""
    tf.keras.utils.set_random_seed(seed)
    plan_rng = np.random.default_rng(seed)
    if dp:
        plan_source, noise_source = dp_seed_sequence(scenario, seed).spawn(2)
        plan_rng = np.random.default_rng(plan_source)
        model.reseed_noise(noise_source)
    model.set_weights(list(weights))
    reset_optimizer(model)
    plan = batch_plan(
        len(y),
        batch_size=scenario.train.batch_size,
        epochs=scenario.train.local_epochs,
        rng=plan_rng,
        sampling=scenario.dp.sampling if dp else "shuffle",
        drop_remainder=dp,
    )
    losses = []
    for indices in plan:
        result = model.train_on_batch(x[indices], y[indices], return_dict=True)
        if len(indices):
            losses.append(float(result["loss"]))
    return model.get_weights(), float(np.mean(losses)), len(plan)


CASES = {
    "sgd-mlp": ("quickstart", [], False, None),
    "adam-cnn-l2": (
        "quickstart",
        ['model.name="cnn"', 'train.optimizer="adam"', "model.l2=1e-3"],
        False,
        None,
    ),
    "dp-poisson": ("dp_local", ["dp.reproducible_noise=true"], True, None),
    # Batch size 1 on 20 examples: q = 0.05, so about a third of the steps are empty noise-only.
    "dp-poisson-empty-steps": (
        "dp_local",
        ["dp.reproducible_noise=true", "train.batch_size=1"],
        True,
        20,
    ),
    "dp-shuffle-l2": (
        "dp_local",
        ["dp.reproducible_noise=true", 'dp.sampling="shuffle"', "model.l2=1e-3"],
        True,
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_round_equals_the_train_on_batch_loop(case: str) -> None:
    name, overrides, dp, size = CASES[case]
    scenario = load_scenario(name, overrides)
    model = compiled_model(scenario, (8, 8, 1), 10, dp=dp)
    start = [np.asarray(w) + 0.01 for w in model.get_weights()]
    x, y = client_shard(scenario, 3)
    x, y = x[:size], y[:size]
    old, old_loss, old_steps = _reference(model, start, x, y, scenario=scenario, seed=11, dp=dp)
    new = train_locally(model, start, x, y, scenario=scenario, seed=11, dp=dp)
    assert new.local_steps == old_steps > 0
    for before, after in zip(old, new.weights, strict=True):
        np.testing.assert_array_equal(after, before)
    assert new.mean_loss == pytest.approx(old_loss, rel=1e-6)
    # The round did train: the weights moved away from the start.
    assert max(float(np.abs(a - b).max()) for a, b in zip(start, new.weights, strict=True)) > 1e-3


def test_an_empty_plan_runs_nothing_and_a_plan_runs_its_batches_in_order() -> None:
    scenario = load_scenario("quickstart", [])
    model = compiled_model(scenario, (8, 8, 1), 10, dp=False)
    x, y = client_shard(scenario, 0)
    before = [np.asarray(w) for w in model.get_weights()]
    assert run_plan(model, sgd_step, x, y, []).shape == (0,)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # Two steps on disjoint batches of different sizes: one loss per step, in plan order.
    plan = [np.arange(5, dtype=np.int64), np.arange(5, 12, dtype=np.int64)]
    model.set_weights(before)
    reset_optimizer(model)
    losses = run_plan(model, sgd_step, x, y, plan)
    model.set_weights(before)
    reset_optimizer(model)
    first = model.train_on_batch(x[:5], y[:5])
    second = model.train_on_batch(x[5:12], y[5:12])
    np.testing.assert_allclose(losses, [first, second], rtol=1e-6)


def test_a_model_with_dropout_still_gets_the_tf_seed() -> None:
    # TF's global seed is set only for models with random layers; for those the round must
    # stay a pure function of the seed (same seed, same weights; another seed, others).
    scenario = load_scenario("quickstart", [])
    model = tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(8, 8, 1)),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dropout(0.5),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="sgd", loss=tf.keras.losses.SparseCategoricalCrossentropy())
    start = [np.asarray(w) for w in model.get_weights()]
    x, y = client_shard(scenario, 0)
    runs = [
        train_locally(model, start, x, y, scenario=scenario, seed=s, dp=False) for s in (5, 5, 6)
    ]
    for a, b in zip(runs[0].weights, runs[1].weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(
        np.array_equal(a, b) for a, b in zip(runs[0].weights, runs[2].weights, strict=True)
    )

"""batch_plan: the sampling the accountant assumes is the sampling that happens."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import ConfigError
from common.learning.batching import batch_plan, poisson_sampling_rate, steps_per_epoch


@settings(max_examples=60, deadline=None)
@given(
    num_examples=st.integers(0, 300),
    batch_size=st.integers(1, 64),
    epochs=st.integers(0, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_shuffle_uses_each_example_at_most_once_per_epoch_in_full_batches(
    num_examples: int, batch_size: int, epochs: int, seed: int
) -> None:
    plan = batch_plan(
        num_examples,
        batch_size=batch_size,
        epochs=epochs,
        rng=np.random.default_rng(seed),
        sampling="shuffle",
    )
    per_epoch = num_examples // batch_size
    assert (
        len(plan)
        == epochs * per_epoch
        == epochs * steps_per_epoch(num_examples, batch_size=batch_size, sampling="shuffle")
    )
    assert all(batch.dtype == np.int64 and len(batch) == batch_size for batch in plan)
    for epoch in range(epochs):
        used = np.concatenate(
            [np.empty(0, np.int64), *plan[epoch * per_epoch : (epoch + 1) * per_epoch]]
        )
        # Dropping the last partial batch leaves exactly n mod b examples out of each epoch.
        assert len(np.unique(used)) == len(used) == num_examples - num_examples % batch_size
        assert used.size == 0 or (used.min() >= 0 and used.max() < num_examples)


def test_shuffle_covers_every_example_once_when_the_batch_divides_n() -> None:
    plan = batch_plan(96, batch_size=32, epochs=2, rng=np.random.default_rng(1), sampling="shuffle")
    assert len(plan) == 6
    for epoch in (plan[:3], plan[3:]):
        assert np.array_equal(np.sort(np.concatenate(epoch)), np.arange(96))
    assert not np.array_equal(np.concatenate(plan[:3]), np.concatenate(plan[3:]))


@settings(max_examples=40, deadline=None)
@given(num_examples=st.integers(1, 300), batch_size=st.integers(1, 400), epochs=st.integers(0, 3))
def test_poisson_step_count_is_ceil_n_over_b_per_epoch(
    num_examples: int, batch_size: int, epochs: int
) -> None:
    plan = batch_plan(
        num_examples,
        batch_size=batch_size,
        epochs=epochs,
        rng=np.random.default_rng(0),
        sampling="poisson",
    )
    assert len(plan) == epochs * math.ceil(num_examples / batch_size)
    for batch in plan:  # sorted, distinct, in range: a subset of the shard
        assert batch.dtype == np.int64
        assert np.all(np.diff(batch) > 0) and (batch.size == 0 or batch[-1] < num_examples)


def test_poisson_batch_sizes_are_binomial_n_q() -> None:
    # n = 1437, b = 32: q = 32/1437, 45 steps per epoch; 200 epochs = 9000 batches.
    n, b = 1437, 32
    plan = batch_plan(n, batch_size=b, epochs=200, rng=np.random.default_rng(7), sampling="poisson")
    sizes = np.array([len(batch) for batch in plan])
    q = poisson_sampling_rate(n, batch_size=b)
    assert q == pytest.approx(32 / 1437)
    # Binomial(n, q): mean n q = 32, variance n q (1 - q) = 31.29; the mean of 9000 draws has
    # standard error 0.059, so 0.3 is more than 5 standard errors.
    assert len(sizes) == 9000
    assert abs(sizes.mean() - 32.0) < 0.3
    assert abs(sizes.var() - n * q * (1 - q)) < 2.0
    # Each example's inclusion frequency is q too (not just the batch size).
    counts = np.bincount(np.concatenate(plan), minlength=n)
    assert abs(counts.mean() / 9000 - q) < 1e-3


def test_poisson_keeps_empty_batches_as_steps() -> None:
    # n = 3, b = 1: q = 1/3 and P(empty) = (2/3)^3 = 0.296, so 300 steps have empty ones.
    plan = batch_plan(3, batch_size=1, epochs=100, rng=np.random.default_rng(3), sampling="poisson")
    assert len(plan) == 300
    empty = sum(len(batch) == 0 for batch in plan)
    assert 60 < empty < 120


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    def plan(seed: int, sampling: str) -> list[list[int]]:
        rng = np.random.default_rng(seed)
        return [
            b.tolist() for b in batch_plan(100, batch_size=10, epochs=2, rng=rng, sampling=sampling)
        ]

    for sampling in ("poisson", "shuffle"):
        assert plan(5, sampling) == plan(5, sampling)
        assert plan(5, sampling) != plan(6, sampling)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"^train.batch_size: got 0; must be >= 1$"),
        ({"epochs": -1}, r"^train.local_epochs: got -1; must be >= 0$"),
        ({"sampling": "uniform"}, r"^dp.sampling: got 'uniform'; allowed: poisson, shuffle$"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"batch_size": 4, "epochs": 1, "sampling": "poisson"} | kwargs
    with pytest.raises(ConfigError, match=message):
        batch_plan(10, rng=np.random.default_rng(0), **arguments)  # type: ignore[arg-type]

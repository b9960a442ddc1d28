"""Batch plans for local training: which example indices each local step uses.

The accountant in :mod:`server.privacy_accounting` proves a bound only for the sampling that
really happened, so the two schemes here are exactly the ones it accounts for:

* ``"poisson"``: at every step each of the n examples joins the batch independently with
  probability q = min(1, batch_size / n); an epoch is ceil(n / batch_size) steps. This is the
  sampling of the subsampled-Gaussian RDP analysis (Abadi et al. 2016; Mironov, Talwar and Zhang
  2019, "Renyi Differential Privacy of the Sampled Gaussian Mechanism"). Batch sizes vary and a
  batch may be empty: the empty index array is still part of the plan (it is a step the
  accountant counts); the training loop skips it.
* ``"shuffle"``: every epoch draws a fresh permutation and cuts it into batches of exactly
  ``batch_size``; the last partial batch is DROPPED. Fixed-size batches keep a single traced
  graph, let a microbatch count divide every batch, and keep "each example is used at most
  once per epoch", the only fact the once-per-epoch bound relies on. An epoch is
  floor(n / batch_size) steps (zero when n < batch_size: such a shard does not train).
  Non-private training passes ``drop_remainder=False``: the last, smaller batch is kept, so every
  example is seen once per epoch (ceil(n / batch_size) steps).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from common.errors import ConfigError

Sampling = Literal["poisson", "shuffle"]


def poisson_sampling_rate(num_examples: int, *, batch_size: int) -> float:
    """q = min(1, batch_size / n): the per-step inclusion probability of one example."""
    return min(1.0, batch_size / num_examples) if num_examples > 0 else 0.0


def steps_per_epoch(num_examples: int, *, batch_size: int, sampling: Sampling) -> int:
    """ceil(n / b) for ``"poisson"``, floor(n / b) for ``"shuffle"`` (partial batch dropped)."""
    if sampling == "poisson":
        return math.ceil(num_examples / batch_size)
    return num_examples // batch_size


def batch_plan(
    num_examples: int,
    *,
    batch_size: int,
    epochs: int,
    rng: np.random.Generator,
    sampling: str,
    drop_remainder: bool = True,
) -> list[NDArray[np.int64]]:
    """The list of index arrays, one per local step, for ``epochs`` epochs over n examples.

    ``drop_remainder`` applies to ``"shuffle"`` only; keep it for DP-SGD (see the module doc).

    ``rng`` is the only source of randomness, so a seeded generator fixes the plan. Poisson
    batches list their indices in increasing order; shuffle batches in permutation order.
    """
    if num_examples < 0:
        raise ConfigError(f"num_examples: got {num_examples!r}; must be >= 0")
    if batch_size < 1:
        raise ConfigError(f"train.batch_size: got {batch_size!r}; must be >= 1")
    if epochs < 0:
        raise ConfigError(f"train.local_epochs: got {epochs!r}; must be >= 0")
    if sampling == "poisson":
        return _poisson_plan(num_examples, batch_size=batch_size, epochs=epochs, rng=rng)
    if sampling == "shuffle":
        return _shuffle_plan(
            num_examples,
            batch_size=batch_size,
            epochs=epochs,
            rng=rng,
            drop_remainder=drop_remainder,
        )
    raise ConfigError(f"dp.sampling: got {sampling!r}; allowed: poisson, shuffle")


def _poisson_plan(
    num_examples: int, *, batch_size: int, epochs: int, rng: np.random.Generator
) -> list[NDArray[np.int64]]:
    rate = poisson_sampling_rate(num_examples, batch_size=batch_size)
    steps = epochs * steps_per_epoch(num_examples, batch_size=batch_size, sampling="poisson")
    # One Bernoulli(q) draw per (step, example): independent inclusion is what the proof needs.
    # Drawn step by step so memory stays O(n), not O(steps * n), for large shards.
    return [np.flatnonzero(rng.random(num_examples) < rate).astype(np.int64) for _ in range(steps)]


def _shuffle_plan(
    num_examples: int,
    *,
    batch_size: int,
    epochs: int,
    rng: np.random.Generator,
    drop_remainder: bool,
) -> list[NDArray[np.int64]]:
    per_epoch = steps_per_epoch(num_examples, batch_size=batch_size, sampling="shuffle")
    if not drop_remainder:
        per_epoch = math.ceil(num_examples / batch_size)
    plan: list[NDArray[np.int64]] = []
    for _ in range(epochs):
        order = rng.permutation(num_examples).astype(np.int64)
        plan.extend(order[i * batch_size : (i + 1) * batch_size] for i in range(per_epoch))
    return plan

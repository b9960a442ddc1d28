"""A malicious client's own attacks: a data attack on its shard, an update attack on its delta.

Both are pure functions of the scenario, the client and the round's generator, so every worker
that serves the client computes the same poisoned shard and the same poisoned update.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from attacks.base import DataAttack, UpdateAttack
from common.arrays import flatten, unflatten
from common.data.shards import client_shard, dataset_of
from common.schema import Scenario
from common.seeding import derive_rng


def poisoned_shard(
    scenario: Scenario, partition_id: int, attack: DataAttack[Any]
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """``(x, y)`` of one client with ``attack`` applied.

    The poisoned subset is drawn from a generator keyed by (seed, client), so it is the same
    every round and on every worker.
    """
    x, y = client_shard(scenario, partition_id)
    result = attack.poison(
        x,
        y,
        num_classes=dataset_of(scenario).num_classes,
        rng=derive_rng(scenario.seed, "poison", partition_id),
    )
    return result.x, result.y


def poisoned_update(
    attack: UpdateAttack[Any],
    base: list[NDArray[np.float32]],
    trained: list[NDArray[np.float32]],
    num_examples: int,
    rng: np.random.Generator,
) -> tuple[list[NDArray[np.float32]], int]:
    """Run a client-side model-poisoning attack on the flattened update ``trained - base``."""
    base_flat = flatten(base)
    poisoned, reported = attack.poison_update(flatten(trained) - base_flat, num_examples, rng=rng)
    return unflatten(base_flat + poisoned, base), int(reported)

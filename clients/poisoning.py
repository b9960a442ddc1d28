"""A malicious client's own attacks: a data attack on its shard, then an update attack on its delta.

The scenario's :class:`~attacks.plan.AttackPlan` says which of the two the client runs (both for
model replacement: a backdoor whose update is boosted); an attack with the training hook
(``plan.local_training``: AlterMin, Neurotoxin, Chameleon) also replaces the client's local
training, at the one call site :func:`attacker_training`. Both steps are pure functions of the
scenario, the client and the round's generator, so every worker that serves the client computes
the same poisoned shard and the same poisoned update.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from flwr.app import RecordDict
from numpy.typing import NDArray

from attacks import AttackPlan, StatefulTrainingAttack, attack_plan
from clients.coordinated_training import coordinated_training
from common.arrays import flatten, unflatten
from common.attack_schedule import is_active
from common.data.shards import client_shard, dataset_of, malicious_clients
from common.learning.poison_trainer import KerasTrainer
from common.learning.training import TrainOutcome
from common.schema import Scenario
from common.seeding import derive_rng


def active_plan(scenario: Scenario, partition_id: int, server_round: int) -> AttackPlan | None:
    """The attacks this client runs this round: None for an honest client or an idle round."""
    attack = scenario.attack
    if partition_id not in malicious_clients(scenario) or not is_active(
        server_round,
        start_round=attack.start_round,
        end_round=attack.end_round,
        probability=attack.probability,
        seed=scenario.seed,
    ):
        return None
    return attack_plan(attack)


def training_shard(
    scenario: Scenario, partition_id: int, plan: AttackPlan | None
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """``(x, y)`` the client trains on: its shard, poisoned when the plan has a data attack.

    The poisoned subset is drawn from a generator keyed by (seed, client), so it is the same
    every round and on every worker. The client's rank among the malicious clients (sorted ids)
    is its colluder number: DBA gives each rank its own piece of the trigger.
    """
    x, y = client_shard(scenario, partition_id)
    if plan is None or plan.data is None:
        return x, y
    result = plan.data.poison(x, y, **_poisoner_view(scenario, partition_id))
    return result.x, result.y


def _poisoner_view(scenario: Scenario, partition_id: int) -> dict[str, Any]:
    """The keyword arguments every poisoning call gets: the class count, the (seed, client)
    generator and the colluder rank."""
    return {
        "num_classes": dataset_of(scenario).num_classes,
        "rng": derive_rng(scenario.seed, "poison", partition_id),
        "colluder": sorted(malicious_clients(scenario)).index(partition_id),
    }


def poisoned_update(
    plan: AttackPlan | None,
    base: list[NDArray[np.float32]],
    trained: list[NDArray[np.float32]],
    num_examples: int,
    rng: np.random.Generator,
) -> tuple[list[NDArray[np.float32]], int]:
    """The weights and count to send: ``trained`` unless the plan has an update attack, which
    then rewrites the flattened update ``trained - base`` (after any data attack's training)."""
    if plan is None or plan.update is None:
        return trained, num_examples
    base_flat = flatten(base)
    delta = flatten(trained) - base_flat
    poisoned, reported = plan.update.poison_update(delta, num_examples, rng=rng)
    return unflatten(base_flat + poisoned, base), int(reported)


def attacker_training(
    plan: AttackPlan | None,
    scenario: Scenario,
    partition_id: int,
    model: tf.keras.Model,
    base: list[NDArray[np.float32]],
    seed: int,
    *,
    server_round: int = 0,
    state: RecordDict | None = None,
) -> TrainOutcome | None:
    """The round of an attack that trains the model itself (None when the plan has none):
    ``plan.local_training`` drives ``model``, loaded with ``base``, on the client's CLEAN shard
    through a :class:`~common.learning.poison_trainer.KerasTrainer`; it poisons with the same
    (seed, client) generator as :func:`training_shard`, so its samples are the same every
    round. A stateful attack (3DFed) runs the coalition's round with the node's ``state``
    (:mod:`clients.coordinated_training`)."""
    attack = None if plan is None else plan.local_training
    if attack is None:
        return None
    if isinstance(attack, StatefulTrainingAttack):
        return coordinated_training(
            attack, scenario, partition_id, model, base, server_round, state
        )
    x, y = client_shard(scenario, partition_id)
    trainer = KerasTrainer(model, scenario, seed)
    trainer.load(flatten(base), reset_optimizer=True)
    attack.train(trainer, x, y, **_poisoner_view(scenario, partition_id))
    return trainer.outcome(len(y))

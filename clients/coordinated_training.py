"""A stateful, coordinated training attack's round (3DFed): the colluders' shared computation and
the memory each colluder's node keeps between rounds.

**Coordination.** One attacker drives every colluder
(:class:`attacks.training.StatefulTrainingAttack`): each colluder's client computes the
coalition's round from the first colluder's shard, its (seed, client) generator and its trainer
seed, so all compute the same backdoor, masks and indicators without talking, and each keeps
its own slot.

**Memory.** The indicators planted in round ``t`` are read from the global model of round
``t + 1``, so the attacker must remember them. They cannot be recomputed from what the client
receives in ``t + 1`` (that needs ``w_t``), so they live in Flower's per-node ``context.state``
(which the simulation engine keeps for the node whichever actor serves it), in one
ConfigRecord stamped with the run's identity, the SHA-256 of the scenario's JSON: a sweep's
next cell in the same warm session finds another identity and starts afresh (and overwrites
the record, so it does not grow). The attack itself drops a memory that is not from the round
just before (a round the colluder was not sampled breaks the chain). A run resumed from a
checkpoint (server/resume.py) starts new nodes with empty state: its first round after the
resume reads no feedback and redraws ``alpha``, so it differs from the uninterrupted run there.
"""

from __future__ import annotations

import hashlib

import numpy as np
import tensorflow as tf
from flwr.app import ConfigRecord, RecordDict
from numpy.typing import NDArray

from attacks.training import Memory, StatefulTrainingAttack
from common.arrays import flatten
from common.data.shards import client_shard, dataset_of, malicious_clients
from common.learning.poison_trainer import KerasTrainer
from common.learning.training import TrainOutcome
from common.schema import Scenario
from common.seeding import derive_rng, derive_seed

MEMORY = "fedshield.attack-memory"
"""The ConfigRecord in ``context.state`` that holds the memory."""
RUN = "run"
"""Its entry naming the run the memory belongs to."""


def run_identity(scenario: Scenario) -> str:
    """SHA-256 of the scenario's JSON: two cells of a sweep differ in it."""
    return hashlib.sha256(scenario.model_dump_json().encode()).hexdigest()


def recall(state: RecordDict | None, run: str) -> Memory:
    """The memory stored for ``run`` (empty when there is none or it is another run's)."""
    if state is None or MEMORY not in state.config_records:
        return {}
    record = state.config_records[MEMORY]
    if record.get(RUN) != run:
        return {}
    return {
        k: [float(v) for v in values] for k, values in record.items() if isinstance(values, list)
    }


def remember(state: RecordDict | None, run: str, memory: Memory) -> None:
    """Store ``memory`` for ``run``, replacing whatever the node held."""
    if state is not None:
        state.config_records[MEMORY] = ConfigRecord({RUN: run, **memory})


def coordinated_training(
    attack: StatefulTrainingAttack,  # type: ignore[type-arg]
    scenario: Scenario,
    partition_id: int,
    model: tf.keras.Model,
    base: list[NDArray[np.float32]],
    server_round: int,
    state: RecordDict | None,
) -> TrainOutcome:
    """The colluder's reply for this round, computed as the coalition's lead would."""
    colluders = sorted(malicious_clients(scenario))
    lead = colluders[0]
    x, y = client_shard(scenario, lead)
    trainer = KerasTrainer(model, scenario, derive_seed(scenario.seed, "train", server_round, lead))
    trainer.load(flatten(base), reset_optimizer=True)
    run = run_identity(scenario)
    _, memory = attack.train_round(
        trainer,
        x,
        y,
        num_classes=dataset_of(scenario).num_classes,
        rng=derive_rng(scenario.seed, "poison", lead),
        colluder=colluders.index(partition_id),
        colluders=len(colluders),
        server_round=server_round,
        memory=recall(state, run),
    )
    remember(state, run, memory)
    return trainer.outcome(len(y))

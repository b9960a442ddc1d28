"""The Flower ``ClientApp``: honest training (DP-SGD when on) or a poisoner's client-side attack.

The scenario travels in every train message's ConfigRecord, so the app itself is a module-level
object with no globals tied to one run (an actor serves many clients and many runs). Each client
knows who it is from ``context.node_config["partition-id"]``.
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from numpy.typing import NDArray

from clients.deployment import local_scenario, node_trust
from clients.faults import draw_fault, expired, inject_fault
from clients.poisoning import active_plan, attacker_training, poisoned_update, training_shard
from common import protocol as P
from common.crypto.keys import ClientTrust, client_key
from common.crypto.train_signing import check_train
from common.data.shards import dataset_of, malicious_clients, partitions_of
from common.learning.training import TrainOutcome, compiled_model, train_locally
from common.schema import Scenario
from common.seeding import derive_rng, derive_seed
from common.tf_runtime import configure_tensorflow

app = ClientApp()


@lru_cache(maxsize=4)
def _scenario(scenario_json: str) -> Scenario:
    return Scenario.model_validate_json(scenario_json)


def _scenario_of(message: Message, context: Context) -> Scenario:
    scenario = _scenario(str(message.content.config_records[P.CONFIG][P.SCENARIO]))
    configure_tensorflow(int(scenario.simulation.num_cpus))
    return local_scenario(scenario, context.node_config)


def _refuse(message: Message, partition_id: int, reason: str) -> Message:
    """Reply without weights: the client would not train on a broadcast it cannot trust."""
    metrics = MetricRecord({P.PARTITION_ID: partition_id, P.NUM_EXAMPLES: 0})
    content = RecordDict({P.METRICS: metrics, P.CONFIG: ConfigRecord({P.REFUSED: reason})})
    return Message(content=content, reply_to=message)


def _trust(message: Message, context: Context) -> ClientTrust:
    """The client's own trust anchor: a deployed SuperNode's ``keys-dir``, else the one the
    runner (or a SuperNode's own environment) sets in ``FEDSHIELD_CLIENT_TRUST``.

    Only a client used outside a run (neither) falls back on the message's own scenario,
    which a network attacker could edit to switch the check off.
    """
    trust = node_trust(context.node_config) or ClientTrust.from_environment()
    if trust is not None:
        return trust
    scenario = _scenario_of(message, context)
    return ClientTrust.of(scenario.integrity, scenario.seed)


def _broadcast_is_authentic(
    trust: ClientTrust, node_id: int, arrays: list[NDArray[np.float32]], config: ConfigRecord
) -> bool:
    """The server signed this very message: its round, this recipient, the received weights'
    digest and every configuration entry the client will obey (the scenario JSON included)."""
    server_round = config.get(P.SERVER_ROUND)
    digest, signature = config.get(P.GLOBAL_DIGEST), config.get(P.BROADCAST_SIGNATURE)
    return (
        isinstance(server_round, int)
        and isinstance(digest, str)
        and isinstance(signature, bytes)
        and check_train(
            trust.server_public_key(),
            server_round=server_round,
            node_id=node_id,
            arrays=arrays,
            global_digest=digest,
            config=config,
            exclude=(P.BROADCAST_SIGNATURE,),
            signature=signature,
        )
    )


def local_update(
    scenario: Scenario,
    partition_id: int,
    server_round: int,
    base: list[NDArray[np.float32]],
    state: RecordDict | None = None,
) -> tuple[list[NDArray[np.float32]], int, TrainOutcome]:
    """What the client sends: honest training (DP-SGD and adversarial training when on) or its
    poisoner's update (a stateful attack keeps its memory in the node's ``state``)."""
    plan = active_plan(scenario, partition_id, server_round)
    x, y = training_shard(scenario, partition_id, plan)
    dataset = dataset_of(scenario)
    honest = partition_id not in malicious_clients(scenario)
    dp = scenario.dp.enabled and scenario.dp.mode == "local" and honest
    model = compiled_model(scenario, dataset.input_shape, dataset.num_classes, dp=dp)
    seed = derive_seed(scenario.seed, "train", server_round, partition_id)
    # A poisoner whose attack trains the model itself (AlterMin, Neurotoxin, Chameleon); every
    # other client trains as usual, a data attack's poisoner on its poisoned shard.
    outcome = attacker_training(
        plan, scenario, partition_id, model, base, seed, server_round=server_round, state=state
    )
    if outcome is None:
        outcome = train_locally(
            model, base, x, y, scenario=scenario, seed=seed, dp=dp, adversarial=honest
        )
    rng = derive_rng(scenario.seed, "update-attack", server_round, partition_id)
    weights, num_examples = poisoned_update(plan, base, outcome.weights, len(y), rng)
    return weights, num_examples, outcome


@app.train()
def train(message: Message, context: Context) -> Message:
    """Train on the local shard and reply with new weights, metrics and signed digests."""
    config = message.content.config_records[P.CONFIG]
    partition_id = int(context.node_config["partition-id"])
    if expired(message):  # the round is over: Flower would discard the reply anyway
        return _refuse(message, partition_id, "expired")
    base = message.content.array_records[P.ARRAYS].to_numpy_ndarrays()
    # Verified before anything in the message is obeyed (the scenario is parsed only after).
    trust = _trust(message, context)
    if trust.signed and not _broadcast_is_authentic(trust, context.node_id, base, config):
        return _refuse(message, partition_id, "unauthentic_broadcast")
    scenario = _scenario_of(message, context)
    server_round = int(P.number(config, P.SERVER_ROUND))
    faults = scenario.simulation.faults
    inject_fault(faults, draw_fault(faults, scenario.seed, server_round, partition_id), message)

    # The client's own work (shard, model, training, its attack), for the round's time split;
    # an injected straggler's sleep above is not work and is left out.
    started = time.perf_counter()
    weights, num_examples, outcome = local_update(
        scenario, partition_id, server_round, base, context.state
    )
    train_seconds = time.perf_counter() - started

    integrity = scenario.integrity
    content = P.encode_train_reply(
        weights,
        partition_id=partition_id,
        server_round=server_round,
        num_examples=num_examples,
        # With DP on, the private shard's loss is a side channel (docs/dp.md).
        train_loss=outcome.mean_loss if scenario.dp.reports_train_loss else None,
        local_steps=outcome.local_steps,
        sampling_rate=outcome.sampling_rate,
        train_seconds=train_seconds,
        # The key the client's own trust names (a SuperNode's keys-dir), never the message's.
        key=client_key(
            integrity.model_copy(update={"keys_dir": trust.keys_dir}),
            run_seed=scenario.seed,
            partition_id=partition_id,
        )
        if integrity.enabled
        else None,
        node_id=context.node_id,
        # The broadcast check passed, so the announced digest is the digest of `base`.
        base_digest=str(config.get(P.GLOBAL_DIGEST, "")),
    )
    return Message(content=content, reply_to=message)


@app.query()
def query(message: Message, context: Context) -> Message:
    """Handshake: tell the server this node's partition id and shard size."""
    scenario = _scenario_of(message, context)
    partition_id = int(context.node_config["partition-id"])
    size = len(partitions_of(scenario)[partition_id])
    metrics = MetricRecord({P.PARTITION_ID: partition_id, P.NUM_EXAMPLES: size})
    return Message(content=RecordDict({P.METRICS: metrics}), reply_to=message)

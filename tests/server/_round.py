"""Drive the strategy the way Flower does, without Ray: real train messages and real replies.

``configure_train`` builds the round's messages; each reply is what the ClientApp sends back
for its message, built with the same encoder (:func:`common.protocol.encode_train_reply`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.server import Grid
from numpy.typing import NDArray

from common import protocol as P
from common.crypto.signing import KeyPair
from common.schema import Scenario
from server.adversary import Adversary
from server.guard import IntegrityGuard
from server.inspection import ModelInspector
from server.root_reference import RootReference
from server.round import RoundResult, RoundSink
from server.strategy import FedshieldStrategy
from strategies.base import Rule

F32 = NDArray[np.float32]
NODE_OFFSET = 1000
GRID = cast(Grid, None)  # configure_train never uses the grid
Weights = Callable[[int], Sequence[NDArray[Any]]]
"""Partition id -> the weights that client sends back."""


def make_strategy(
    scenario: Scenario,
    chain: Rule,
    *,
    num_params: int,
    malicious: frozenset[int] = frozenset(),
    guard: IntegrityGuard | None = None,
    root: RootReference | None = None,
    inspector: ModelInspector | None = None,
) -> FedshieldStrategy:
    return FedshieldStrategy(
        scenario=scenario,
        nodes={p: NODE_OFFSET + p for p in range(scenario.data.num_clients)},
        num_params=num_params,
        chain=chain,
        adversary=Adversary(scenario, malicious=malicious),
        guard=guard,
        sink=RoundSink(),
        root=root,
        inspector=inspector,
    )


def partition_of(message: Message) -> int:
    return int(message.metadata.dst_node_id) - NODE_OFFSET


def client_reply(
    sent: Message,
    arrays: Sequence[NDArray[Any]],
    *,
    num_examples: int = 10,
    key: KeyPair | None = None,
) -> Message:
    """What the ClientApp sends back for ``sent`` (honest metrics, signed when given a key)."""
    config = sent.content.config_records[P.CONFIG]
    content = P.encode_train_reply(
        arrays,
        partition_id=partition_of(sent),
        server_round=int(config[P.SERVER_ROUND]),  # type: ignore[arg-type]
        num_examples=num_examples,
        train_loss=0.1,
        local_steps=5,
        sampling_rate=0.2,
        key=key,
        node_id=int(sent.metadata.dst_node_id),
        base_digest=str(config.get(P.GLOBAL_DIGEST, "")),
    )
    return Message(content=content, reply_to=sent)


def play_round(
    strategy: FedshieldStrategy,
    server_round: int,
    global_arrays: Sequence[F32],
    weights: Weights,
    *,
    replying: Callable[[int], bool] = lambda partition: True,
    num_examples: Callable[[int], int] = lambda partition: 10,
    key: Callable[[int], KeyPair | None] = lambda partition: None,
) -> tuple[list[F32], RoundResult]:
    """Broadcast, let every ``replying`` sampled client answer, aggregate, take the result."""
    sent = strategy.configure_train(
        server_round, ArrayRecord(list(global_arrays)), ConfigRecord(), GRID
    )
    replies = [
        client_reply(m, weights(p), num_examples=num_examples(p), key=key(p))
        for m in sent
        if replying(p := partition_of(m))
    ]
    arrays, _ = strategy.aggregate_train(server_round, replies)
    assert arrays is not None
    result = strategy.sink.take(server_round)
    assert result is not None
    return arrays.to_numpy_ndarrays(), result

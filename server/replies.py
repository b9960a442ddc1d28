"""Decode Flower reply messages into plain, typed client replies (one place for record keys)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from flwr.app import ConfigRecord, Message
from numpy.typing import NDArray

from common import protocol as P


@dataclass(frozen=True)
class ClientReply:
    """One client's training reply as the server sees it (after the wire, before any check)."""

    partition_id: int
    node_id: int
    arrays: list[NDArray[np.float32]]
    num_examples: int
    train_loss: float
    local_steps: int
    sampling_rate: float
    base_digest: str | None = None
    update_digest: str | None = None
    signature: bytes | None = None
    refused: str | None = None

    def with_arrays(self, arrays: list[NDArray[np.float32]]) -> ClientReply:
        """The same reply carrying other weights (what an adversary on the wire produces)."""
        return replace(self, arrays=arrays)


def decode_reply(message: Message) -> ClientReply:
    """Read a train reply; a client that refused the broadcast carries no arrays."""
    content = message.content
    metrics = content.metric_records[P.METRICS]
    partition_id = int(P.number(metrics, P.PARTITION_ID))
    node_id = int(message.metadata.src_node_id)
    config = content.config_records.get(P.CONFIG, ConfigRecord())
    if (refused := P.optional(config, P.REFUSED, str)) is not None:
        return ClientReply(partition_id, node_id, [], 0, float("nan"), 0, 0.0, refused=refused)
    integrity = content.config_records.get(P.INTEGRITY, ConfigRecord())
    return ClientReply(
        partition_id=partition_id,
        node_id=node_id,
        arrays=content.array_records[P.ARRAYS].to_numpy_ndarrays(),
        num_examples=int(P.number(metrics, P.NUM_EXAMPLES)),
        train_loss=P.number(metrics, P.TRAIN_LOSS) if P.TRAIN_LOSS in metrics else float("nan"),
        local_steps=int(P.number(metrics, P.LOCAL_STEPS)),
        sampling_rate=P.number(metrics, P.SAMPLING_RATE),
        base_digest=P.optional(integrity, P.BASE_DIGEST, str),
        update_digest=P.optional(integrity, P.UPDATE_DIGEST, str),
        signature=P.optional(integrity, P.SIGNATURE, bytes),
    )

"""Decode Flower reply messages into plain, typed client replies (one place for record keys)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from flwr.app import Message
from numpy.typing import NDArray

from fedshield import protocol as P


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
    metrics = content[P.METRICS]
    partition_id = int(metrics[P.PARTITION_ID])
    node_id = int(message.metadata.src_node_id)
    if P.CONFIG in content and P.REFUSED in content[P.CONFIG]:
        return ClientReply(
            partition_id, node_id, [], 0, float("nan"), 0, 0.0, refused=str(content[P.CONFIG][P.REFUSED])
        )
    integrity = content[P.INTEGRITY] if P.INTEGRITY in content else {}
    signature = integrity.get(P.SIGNATURE)
    return ClientReply(
        partition_id=partition_id,
        node_id=node_id,
        arrays=content[P.ARRAYS].to_numpy_ndarrays(),
        num_examples=int(metrics[P.NUM_EXAMPLES]),
        train_loss=float(metrics[P.TRAIN_LOSS]),
        local_steps=int(metrics[P.LOCAL_STEPS]),
        sampling_rate=float(metrics[P.SAMPLING_RATE]),
        base_digest=integrity.get(P.BASE_DIGEST),
        update_digest=integrity.get(P.UPDATE_DIGEST),
        signature=signature if isinstance(signature, bytes) else None,
    )

"""A round's replies decoded: well-formed updates, refusals, malformed replies and misfits.

A reply that does not follow the protocol is a recorded rejection, never an exception; a reply
whose arrays do not fit the global model is kept aside (never stacked) with the gate's reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from flwr.app import Message
from numpy.typing import NDArray

from common.protocol import ProtocolError, Refusal, TrainReply, decode_train_reply
from server.integrity.claims import structure_failure


@dataclass(frozen=True)
class DecodedReplies:
    """A round's replies after decoding: well-formed ones, refusals, and rejections."""

    replies: list[TrainReply]
    refused: dict[int, str]
    rejected: dict[int, tuple[str, ...]]
    misfits: list[TrainReply]
    """Decoded replies whose arrays do not fit the global model (never stacked)..."""
    misfit_reasons: dict[int, tuple[str, ...]]
    """... and why, per partition (the gate's vocabulary: ``shape_mismatch`` etc.)."""


def decode_replies(
    messages: list[Message],
    partition_of: Mapping[int, int],
    global_weights: list[NDArray[np.float32]],
) -> DecodedReplies:
    """Decode every reply, sorted by partition; ``partition_of`` maps node id -> partition.

    A reply that claims another partition than its sending node's is rejected as malformed.
    """
    decoded = DecodedReplies([], {}, {}, [], {})
    for message in messages:
        sender = partition_of.get(int(message.metadata.src_node_id), -1)
        try:
            reply = decode_train_reply(message)
        except ProtocolError as err:
            decoded.rejected[sender] = (f"malformed: {err}",)
            continue
        if reply.partition_id != sender:
            # A reply speaks for its sender's partition only: another id would let one node
            # pose as another client (and index past the run's clients).
            decoded.rejected[sender] = (
                f"malformed: claims partition {reply.partition_id}, sent by partition {sender}",
            )
            continue
        if isinstance(reply, Refusal):
            decoded.refused[reply.partition_id] = reply.reason
        elif (misfit := structure_failure(reply, global_weights)) is None:
            decoded.replies.append(reply)
        else:
            decoded.misfits.append(reply)
            decoded.misfit_reasons[reply.partition_id] = (misfit,)
    decoded.replies.sort(key=lambda r: r.partition_id)
    return decoded

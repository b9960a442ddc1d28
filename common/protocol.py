"""The wire format between the ServerApp and the ClientApp: record keys and the train reply.

One vocabulary for both sides. A client builds its train reply with :func:`encode_train_reply`
(digest and signature included when it holds a key); the server reads it back with
:func:`decode_train_reply` into a :class:`TrainReply`, the one type the adversary, the
integrity gate and the aggregation see. A reply that does not follow this format raises
:class:`ProtocolError`, which the server records as a rejection of that reply (the round goes
on): it arrived over the network, so it is the sender's fault, never the run's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from numpy.typing import NDArray

from common.crypto.digest import digest_arrays
from common.crypto.signing import KeyPair, sign_reply
from common.errors import FedshieldError

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
INTEGRITY = "integrity"

# ConfigRecord keys sent by the server.
SERVER_ROUND = "server-round"
SCENARIO = "scenario"
GLOBAL_DIGEST = "global-digest"
BROADCAST_SIGNATURE = "broadcast-signature"

# MetricRecord keys sent by clients (SERVER_ROUND too: the round the client trained for).
NUM_EXAMPLES = "num-examples"
PARTITION_ID = "partition-id"
TRAIN_LOSS = "train-loss"
LOCAL_STEPS = "local-steps"
SAMPLING_RATE = "sampling-rate"
TRAIN_SECONDS = "train-seconds"
REFUSED = "refused"

# Integrity ConfigRecord keys sent by clients.
BASE_DIGEST = "base-digest"
UPDATE_DIGEST = "update-digest"
SIGNATURE = "signature"


class ProtocolError(FedshieldError):
    """A message does not follow this protocol (a field missing or of the wrong type)."""


@dataclass(frozen=True)
class TrainReply:
    """One client's train reply as the server received it; every field but ``node_id`` is a claim.

    ``node_id`` comes from the Flower message metadata (the transport's sender), not from the
    reply content, so a reply relayed by another node fails its signature.
    """

    partition_id: int
    node_id: int
    server_round: int
    """The round the client says it trained for (signed)."""
    arrays: Sequence[NDArray[Any]]
    num_examples: int
    train_loss: float = math.nan
    local_steps: int = 0
    sampling_rate: float = 0.0
    train_seconds: float = math.nan
    """Wall seconds the client says its local work took (a metric, never a decision input)."""
    base_digest: str = ""
    update_digest: str = ""
    signature: bytes | None = None

    def with_arrays(self, arrays: Sequence[NDArray[Any]]) -> TrainReply:
        """The same claims carrying other weights (what an adversary on the wire produces)."""
        return replace(self, arrays=arrays)


@dataclass(frozen=True)
class Refusal:
    """A client that would not train on the round's broadcast, and why."""

    partition_id: int
    reason: str


def encode_train_reply(
    arrays: Sequence[NDArray[Any]],
    *,
    partition_id: int,
    server_round: int,
    num_examples: int,
    train_loss: float | None = None,
    local_steps: int = 0,
    sampling_rate: float = 0.0,
    train_seconds: float | None = None,
    key: KeyPair | None = None,
    node_id: int = 0,
    base_digest: str = "",
) -> RecordDict:
    """The content of a train reply; signed over (round, node, base, update, examples) by ``key``.

    ``node_id`` is the sender's own Flower node id and ``base_digest`` the digest of the global
    weights it trained from; both matter only when ``key`` is given. ``train_loss`` is left out
    when None (with DP on it is a side channel of the private shard: docs/dp.md), and so is
    ``train_seconds`` (the client's own timing of its local work, for the round's time split).
    """
    content = RecordDict(
        {
            ARRAYS: ArrayRecord(list(arrays)),
            METRICS: MetricRecord(
                {
                    PARTITION_ID: partition_id,
                    SERVER_ROUND: server_round,
                    NUM_EXAMPLES: num_examples,
                    LOCAL_STEPS: local_steps,
                    SAMPLING_RATE: sampling_rate,
                    **({} if train_loss is None else {TRAIN_LOSS: train_loss}),
                    **({} if train_seconds is None else {TRAIN_SECONDS: train_seconds}),
                }
            ),
        }
    )
    if key is not None:
        update_digest = digest_arrays(arrays)
        signature = sign_reply(
            key,
            server_round=server_round,
            node_id=node_id,
            base_digest=base_digest,
            update_digest=update_digest,
            num_examples=num_examples,
        )
        content[INTEGRITY] = ConfigRecord(
            {BASE_DIGEST: base_digest, UPDATE_DIGEST: update_digest, SIGNATURE: signature}
        )
    return content


def decode_train_reply(message: Message) -> TrainReply | Refusal:
    """Read a train reply (or a refusal); raises :class:`ProtocolError` naming the bad field."""
    content = message.content
    metrics = content.metric_records.get(METRICS)
    if metrics is None:
        raise ProtocolError(f"reply record {METRICS!r} is missing")
    partition_id = integer(metrics, PARTITION_ID)
    config = content.config_records.get(CONFIG, ConfigRecord())
    if REFUSED in config:
        return Refusal(partition_id, text(config, REFUSED))
    arrays = content.array_records.get(ARRAYS)
    if arrays is None:
        raise ProtocolError(f"reply record {ARRAYS!r} is missing")
    integrity = content.config_records.get(INTEGRITY, ConfigRecord())
    signature = integrity.get(SIGNATURE)
    if signature is not None and not isinstance(signature, bytes):
        raise ProtocolError(f"field {SIGNATURE!r}: got {type(signature).__name__}; expected bytes")
    return TrainReply(
        partition_id=partition_id,
        node_id=int(message.metadata.src_node_id),
        server_round=integer(metrics, SERVER_ROUND),
        arrays=arrays.to_numpy_ndarrays(),
        num_examples=integer(metrics, NUM_EXAMPLES),
        train_loss=number(metrics, TRAIN_LOSS) if TRAIN_LOSS in metrics else math.nan,
        local_steps=int(_within(integer(metrics, LOCAL_STEPS), LOCAL_STEPS, 0, math.inf)),
        sampling_rate=_within(number(metrics, SAMPLING_RATE), SAMPLING_RATE, 0.0, 1.0),
        train_seconds=_within(number(metrics, TRAIN_SECONDS), TRAIN_SECONDS, 0.0, math.inf)
        if TRAIN_SECONDS in metrics
        else math.nan,
        base_digest=text(integrity, BASE_DIGEST) if BASE_DIGEST in integrity else "",
        update_digest=text(integrity, UPDATE_DIGEST) if UPDATE_DIGEST in integrity else "",
        signature=signature,
    )


def _field(record: Mapping[str, object], key: str) -> object:
    if key not in record:
        raise ProtocolError(f"field {key!r} is missing")
    return record[key]


def number(record: Mapping[str, object], key: str) -> float:
    """A numeric field of a message; anything else raises :class:`ProtocolError`."""
    value = _field(record, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"field {key!r}: got {value!r}; expected a number")
    return float(value)


def integer(record: Mapping[str, object], key: str) -> int:
    """An integer field of a message (an ``int``, not a float nor a bool)."""
    value = _field(record, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"field {key!r}: got {value!r}; expected an integer")
    return value


def _within(value: float, key: str, low: float, high: float) -> float:
    """``value`` when ``low <= value <= high`` (what the privacy accountant can compose)."""
    if not low <= value <= high:
        raise ProtocolError(f"field {key!r}: got {value!r}; expected a value in [{low}, {high}]")
    return value


def text(record: Mapping[str, object], key: str) -> str:
    """A string field of a message."""
    value = _field(record, key)
    if not isinstance(value, str):
        raise ProtocolError(f"field {key!r}: got {value!r}; expected a string")
    return value

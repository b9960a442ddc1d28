"""Builders shared by the integrity tests: a small model, read-only arrays, honest replies.

Replies go through the real wire format: :func:`common.protocol.encode_train_reply` (what the
ClientApp calls) and :func:`common.protocol.decode_train_reply` (what the server calls).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from flwr.app import Message, MessageType, RecordDict
from numpy.typing import NDArray

from common.crypto.digest import digest_arrays
from common.crypto.signing import KeyPair
from common.protocol import TrainReply, decode_train_reply, encode_train_reply

RUN_SEED = 2024
NUM_CLIENTS = 8
SHAPES = ((4, 3), (3,), (3, 4), (4,))  # Dense(3) -> Dense(4): weights and biases

F32 = NDArray[np.float32]
Scalar = TypeVar("Scalar", bound=np.generic)


def read_only(arrays: Sequence[NDArray[Scalar]]) -> list[NDArray[Scalar]]:
    """Copies flagged read-only, so any in-place write by the code under test raises."""
    frozen = [np.array(array) for array in arrays]
    for array in frozen:
        array.setflags(write=False)
    return frozen


def global_model(seed: int = 0) -> list[F32]:
    rng = np.random.default_rng(seed)
    return read_only([rng.standard_normal(shape).astype(np.float32) for shape in SHAPES])


def honest_update(
    global_arrays: Sequence[F32], rng: np.random.Generator, scale: float = 0.01
) -> list[F32]:
    return read_only(
        [g + (scale * rng.standard_normal(g.shape)).astype(np.float32) for g in global_arrays]
    )


def received(content: RecordDict, node_id: int) -> TrainReply:
    """What the server decodes when node ``node_id`` replies ``content`` to a train message."""
    sent = Message(content=RecordDict(), message_type=MessageType.TRAIN, dst_node_id=node_id)
    reply = decode_train_reply(Message(content=content, reply_to=sent))
    assert isinstance(reply, TrainReply)
    return reply


def sealed(
    key: KeyPair,
    partition_id: int,
    arrays: Sequence[NDArray[np.generic]],
    *,
    server_round: int,
    base: Sequence[NDArray[np.generic]],
    num_examples: int = 10,
) -> TrainReply:
    """An honest client's reply, encoded and signed as the ClientApp does, then decoded.

    The node id is derived from the partition (``1000 + partition_id``).
    """
    node_id = 1000 + partition_id
    content = encode_train_reply(
        arrays,
        partition_id=partition_id,
        server_round=server_round,
        num_examples=num_examples,
        key=key,
        node_id=node_id,
        base_digest=digest_arrays(base),
    )
    return received(content, node_id)


def with_delta_norms(
    client_keys: Mapping[int, KeyPair],
    norms: Sequence[float],
    *,
    base: Sequence[F32],
    server_round: int,
) -> list[TrainReply]:
    """Client i moves one weight by norms[i]: its delta norm is exactly norms[i] (float32)."""
    replies = []
    for (pid, key), norm in zip(client_keys.items(), norms, strict=True):
        first = np.array(base[0])
        first[pid % 4, 0] = np.float32(first[pid % 4, 0] + norm)
        delta = float(first[pid % 4, 0]) - float(base[0][pid % 4, 0])
        assert abs(delta - norm) <= 1e-6 * norm
        arrays = read_only([first, *base[1:]])
        replies.append(sealed(key, pid, arrays, server_round=server_round, base=base))
    return replies


# In-transit manipulations of a weight list (new read-only arrays; the input is untouched).
def bit_flip(arrays: Sequence[NDArray[Any]], rng: np.random.Generator) -> list[NDArray[Any]]:
    copies = [np.array(a) for a in arrays]
    target = copies[int(rng.integers(len(copies)))]
    byte = int(rng.integers(target.nbytes))
    target.reshape(-1).view(np.uint8)[byte] ^= np.uint8(1 << int(rng.integers(8)))
    return read_only(copies)


def noise(arrays: Sequence[NDArray[Any]], rng: np.random.Generator) -> list[NDArray[Any]]:
    index = int(rng.integers(len(arrays)))
    noise = rng.normal(0, 1e-3, arrays[index].shape).astype(np.float32)
    return read_only([a + noise if i == index else a for i, a in enumerate(arrays)])


def swap_layers(arrays: Sequence[NDArray[Any]]) -> list[NDArray[Any]]:
    # Layers 0 (4x3) and 2 (3x4) both hold 12 values: swapping keeps every shape intact.
    swapped = list(arrays)
    swapped[0], swapped[2] = arrays[2].reshape(4, 3), arrays[0].reshape(3, 4)
    return read_only(swapped)

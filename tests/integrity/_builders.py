"""Builders shared by the integrity tests: a small model, read-only arrays, honest replies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from common.crypto.digest import digest_arrays
from common.crypto.signing import KeyPair
from server.integrity.gate import SignedReply, seal_reply

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


def sealed(
    key: KeyPair,
    partition_id: int,
    arrays: Sequence[NDArray[np.generic]],
    *,
    server_round: int,
    base: Sequence[NDArray[np.generic]],
    num_examples: int = 10,
) -> SignedReply:
    """An honest client's reply: trained from ``base``, node id derived from the partition."""
    return seal_reply(
        key,
        partition_id=partition_id,
        node_id=1000 + partition_id,
        server_round=server_round,
        arrays=arrays,
        num_examples=num_examples,
        base_digest=digest_arrays(base),
    )

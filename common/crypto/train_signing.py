"""The train message's signature: what a client obeys is what the server signed.

Payload (see :mod:`common.crypto.signing` for all of fedshield's signed messages)::

    b"fedshield/train/v2\\0" || u64(server_round) || u64(node_id)
    || global_digest (32 raw bytes) || u64(len(c)) || c

with ``c = config_bytes(config, exclude=(signature key,))``
(:mod:`common.crypto.canonical`): the whole configuration record the client receives, scenario
JSON included. The adversary is a network attacker without keys: measured before this binding,
editing only the scenario JSON of one client's message turned that honest client into a x2.5
sign-flipping poisoner whose update carried its genuine reply signature, or switched its DP off.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from numpy.typing import NDArray

from common.crypto.canonical import config_bytes
from common.crypto.digest import digest_arrays
from common.crypto.signing import KeyPair, digest_bytes, u64, verify_payload
from common.errors import IntegrityError

_TRAIN_DOMAIN = b"fedshield/train/v2\x00"


def _train_payload(*, server_round: int, node_id: int, global_digest: str, config: bytes) -> bytes:
    return (
        _TRAIN_DOMAIN
        + u64(server_round, "server_round")
        + u64(node_id, "node_id")
        + digest_bytes(global_digest, "global_digest")
        + struct.pack("<Q", len(config))
        + config
    )


def sign_train(
    key: KeyPair,
    *,
    server_round: int,
    node_id: int,
    global_digest: str,
    config: Mapping[str, object],
    exclude: Sequence[str] = (),
) -> bytes:
    """Server signature over one train message: round, recipient, global digest, config.

    ``config`` is the configuration record exactly as sent, ``exclude`` the key(s) the
    signature itself will travel under.
    """
    return key.private_key.sign(
        _train_payload(
            server_round=server_round,
            node_id=node_id,
            global_digest=global_digest,
            config=config_bytes(config, exclude=exclude),
        )
    )


def check_train(
    public_key: Ed25519PublicKey,
    *,
    server_round: int,
    node_id: int,
    arrays: Sequence[NDArray[np.generic]],
    global_digest: str,
    config: Mapping[str, object],
    exclude: Sequence[str] = (),
    signature: bytes,
) -> bool:
    """Client side: the arrays hash to ``global_digest`` and the server signed this message.

    Everything the client will obey is covered: a ``False`` means the weights, the round, the
    recipient or any configuration entry (the scenario JSON included) differs from what the
    server signed, and the client must not train. A field that cannot even be encoded is a
    failed check, not an error: it arrived over the wire and is the sender's claim.
    """
    try:
        payload = _train_payload(
            server_round=server_round,
            node_id=node_id,
            global_digest=global_digest,
            config=config_bytes(config, exclude=exclude),
        )
    except IntegrityError:
        return False
    return digest_arrays(arrays) == global_digest and verify_payload(public_key, signature, payload)

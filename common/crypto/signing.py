"""Ed25519 keys and the two signed messages of a round (broadcast and reply).

Ed25519 (RFC 8032, via ``cryptography``) gives 64-byte deterministic signatures with 128-bit
security; verification costs about 0.1 ms, negligible next to hashing a model.

Every signed payload starts with its own domain tag, so a signature made for one message kind
can never be replayed as another (a reply signature is not a valid broadcast signature)::

    broadcast: b"fedshield/broadcast/v1\\0" || u64(server_round) || global_digest (32 raw bytes)
    reply:     b"fedshield/reply/v1\\0"     || u64(server_round) || u64(node_id)
               || base_digest (32 raw bytes) || update_digest (32 raw bytes) || u64(num_examples)

Binding ``server_round`` and ``base_digest`` defeats replay of an old update; binding
``node_id`` (Flower's per-run node id, filled by the server from the message metadata) defeats
relaying another node's signed reply; binding ``num_examples`` stops a man in the middle from
inflating a client's FedAvg weight.

Simulation keys are derived from the scenario seed (:meth:`KeyPair.from_seed`); a deployment
loads PEM files written by :meth:`KeyPair.save`.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from numpy.typing import NDArray

from common.crypto.digest import digest_arrays, is_hex_digest
from common.errors import IntegrityError

PublicKey = Ed25519PublicKey

_KEY_DOMAIN = b"fedshield/keypair/v1\x00"
_BROADCAST_DOMAIN = b"fedshield/broadcast/v1\x00"
_REPLY_DOMAIN = b"fedshield/reply/v1\x00"
_U64_MAX = 2**64 - 1


def _u64(value: int, field: str) -> bytes:
    if not 0 <= value <= _U64_MAX:
        raise IntegrityError(f"{field}: got {value}; must be an integer in [0, 2**64 - 1]")
    return struct.pack("<Q", value)


def _digest_bytes(value: str, field: str) -> bytes:
    if not is_hex_digest(value):
        raise IntegrityError(f"{field}: got {value!r}; must be a 64-character lowercase hex digest")
    return bytes.fromhex(value)


def _length_prefixed(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def key_name(role: str, index: int) -> str:
    """File stem of a key: ``{role}_{index:04d}`` (``client_0007``, ``server_0000``)."""
    if not role or not role.isidentifier():
        raise IntegrityError(f"role: got {role!r}; must be a non-empty identifier")
    if index < 0:
        raise IntegrityError(f"index: got {index}; must be >= 0")
    return f"{role}_{index:04d}"


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 private key and the name its files are saved under (``{name}.key/.pub``)."""

    name: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The public half, what the other side needs to verify."""
        return self.private_key.public_key()

    @classmethod
    def from_seed(cls, run_seed: int, role: str, index: int = 0) -> KeyPair:
        """Deterministic key for simulations: same ``(run_seed, role, index)``, same key.

        The 32-byte Ed25519 private seed is
        ``SHA-256(b"fedshield/keypair/v1\\0" || u64(len(s)) || s)`` with
        ``s = f"{run_seed}/{role}/{index}"`` (the domain tag keeps these keys apart from any
        other use of the scenario seed). Anyone who knows the run seed knows every key: this
        is for simulations only; deployments use :meth:`load`.
        """
        name = key_name(role, index)
        material = _KEY_DOMAIN + _length_prefixed(f"{run_seed}/{role}/{index}")
        seed = hashlib.sha256(material).digest()
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def generate(cls, role: str, index: int = 0) -> KeyPair:
        """A fresh random key (OS entropy) for a deployment; save it with :meth:`save`."""
        return cls(key_name(role, index), Ed25519PrivateKey.generate())

    def save(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``{name}.key`` (PKCS#8 PEM, mode 0600) and ``{name}.pub``; return both paths."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        private_path = target / f"{self.name}.key"
        public_path = target / f"{self.name}.pub"
        private_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Create with 0600 so the private key is never readable by others, not even briefly.
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private_pem)
        public_path.write_bytes(
            self.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return private_path, public_path

    @classmethod
    def load(cls, private_path: str | os.PathLike[str]) -> KeyPair:
        """Read a PEM private key written by :meth:`save`; the name is the file stem."""
        path = Path(private_path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise IntegrityError(f"{path}: got a {type(key).__name__}; an Ed25519 key is required")
        return cls(path.stem, key)


def load_public(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Read a PEM public key written by :meth:`KeyPair.save`."""
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise IntegrityError(f"{path}: got a {type(key).__name__}; an Ed25519 key is required")
    return key


def _broadcast_payload(*, server_round: int, global_digest: str) -> bytes:
    return (
        _BROADCAST_DOMAIN
        + _u64(server_round, "server_round")
        + _digest_bytes(global_digest, "global_digest")
    )


def _reply_payload(
    *, server_round: int, node_id: int, base_digest: str, update_digest: str, num_examples: int
) -> bytes:
    return (
        _REPLY_DOMAIN
        + _u64(server_round, "server_round")
        + _u64(node_id, "node_id")
        + _digest_bytes(base_digest, "base_digest")
        + _digest_bytes(update_digest, "update_digest")
        + _u64(num_examples, "num_examples")
    )


def _verify(public_key: Ed25519PublicKey, signature: bytes, payload: bytes) -> bool:
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


def sign_broadcast(key: KeyPair, *, server_round: int, global_digest: str) -> bytes:
    """Server signature over (round, global digest), sent with the global weights."""
    return key.private_key.sign(
        _broadcast_payload(server_round=server_round, global_digest=global_digest)
    )


def verify_broadcast(
    public_key: Ed25519PublicKey, *, server_round: int, global_digest: str, signature: bytes
) -> bool:
    """True when ``signature`` is the server's over (round, global digest).

    A malformed field (not a digest, negative round) is a failed verification, not an error:
    it arrived over the wire and is the sender's claim.
    """
    try:
        payload = _broadcast_payload(server_round=server_round, global_digest=global_digest)
    except IntegrityError:
        return False
    return _verify(public_key, signature, payload)


def sign_reply(
    key: KeyPair,
    *,
    server_round: int,
    node_id: int,
    base_digest: str,
    update_digest: str,
    num_examples: int,
) -> bytes:
    """Client signature over its reply's claims (see the module docstring for the payload)."""
    return key.private_key.sign(
        _reply_payload(
            server_round=server_round,
            node_id=node_id,
            base_digest=base_digest,
            update_digest=update_digest,
            num_examples=num_examples,
        )
    )


def verify_reply(
    public_key: Ed25519PublicKey,
    *,
    server_round: int,
    node_id: int,
    base_digest: str,
    update_digest: str,
    num_examples: int,
    signature: bytes,
) -> bool:
    """True when ``signature`` is the client's over exactly these reply claims."""
    try:
        payload = _reply_payload(
            server_round=server_round,
            node_id=node_id,
            base_digest=base_digest,
            update_digest=update_digest,
            num_examples=num_examples,
        )
    except IntegrityError:
        return False
    return _verify(public_key, signature, payload)


def check_broadcast(
    public_key: Ed25519PublicKey,
    *,
    server_round: int,
    arrays: Sequence[NDArray[np.generic]],
    global_digest: str,
    signature: bytes,
) -> bool:
    """Client side: the received arrays hash to ``global_digest`` and the server signed it.

    A client that gets ``False`` must not train: its base was altered in transit.
    """
    return digest_arrays(arrays) == global_digest and verify_broadcast(
        public_key, server_round=server_round, global_digest=global_digest, signature=signature
    )

"""Ed25519 keys and the messages fedshield signs: the train message, the reply, the ledger.

Ed25519 (RFC 8032, via ``cryptography``) gives 64-byte deterministic signatures with 128-bit
security; verification costs about 0.1 ms, negligible next to hashing a model.

Every signed payload starts with its own domain tag, so a signature made for one message kind
can never be replayed as another (a reply signature is not a valid train-message signature, an
entry signature is not a head signature)::

    train:  b"fedshield/train/v2\0" || u64(server_round) || u64(node_id)
            || global_digest (32 raw bytes) || u64(len(c)) || c
    reply:  b"fedshield/reply/v1\0" || u64(server_round) || u64(node_id)
            || base_digest (32 raw bytes) || update_digest (32 raw bytes) || u64(num_examples)
    entry:  b"fedshield/ledger-entry/v1\0" || entry_hash (32 raw bytes)
    head:   b"fedshield/ledger-head/v1\0" || u64(len(run)) || run (UTF-8) || u64(rounds)
            || head_hash (32 raw bytes)

``c`` is :func:`common.crypto.canonical.config_bytes` of the whole configuration record the
client receives (scenario JSON included) minus the signature itself: the server signs
everything a client obeys, so a network attacker cannot turn an honest client into a poisoner
or switch its DP off by editing the scenario on the link. ``node_id`` is the recipient (Flower's
node id), so a message signed for one node is not an order to another.

Binding ``server_round`` and ``base_digest`` in a reply defeats replay of an old update; binding
``node_id`` (filled by the server from the message metadata) defeats relaying another node's
signed reply; binding ``num_examples`` stops a man in the middle from inflating a client's
FedAvg weight. An entry signature makes the ledger writable by the server's key only; the head
signature pins where the chain ends (``rounds`` entries, the last one hashing to ``head_hash``),
so deleting the last entries is detected too.

Simulation keys are derived from the scenario seed (:meth:`KeyPair.from_seed`: anyone who knows
the seed can sign anything); a deployment loads PEM files written by :meth:`KeyPair.save`.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from common.crypto.digest import is_hex_digest
from common.crypto.keyfiles import read_private, write_private, write_public
from common.errors import IntegrityError

PublicKey = Ed25519PublicKey

_KEY_DOMAIN = b"fedshield/keypair/v1\x00"
_REPLY_DOMAIN = b"fedshield/reply/v1\x00"
_U64_MAX = 2**64 - 1


def u64(value: int, field: str) -> bytes:
    """``value`` as an unsigned 64-bit little-endian integer; out of range names ``field``."""
    if not 0 <= value <= _U64_MAX:
        raise IntegrityError(f"{field}: got {value}; must be an integer in [0, 2**64 - 1]")
    return struct.pack("<Q", value)


def digest_bytes(value: str, field: str) -> bytes:
    """The 32 raw bytes of a hex digest; anything but a well-formed digest names ``field``."""
    if not is_hex_digest(value):
        raise IntegrityError(f"{field}: got {value!r}; must be a 64-character lowercase hex digest")
    return bytes.fromhex(value)


def length_prefixed(text: str) -> bytes:
    """``u64(len) || text`` (UTF-8): a variable-length field that cannot run into the next."""
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
        material = _KEY_DOMAIN + length_prefixed(f"{run_seed}/{role}/{index}")
        seed = hashlib.sha256(material).digest()
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def generate(cls, role: str, index: int = 0) -> KeyPair:
        """A fresh random key (OS entropy) for a deployment; save it with :meth:`save`."""
        return cls(key_name(role, index), Ed25519PrivateKey.generate())

    def save(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``{name}.key`` (PKCS#8 PEM, mode 0600) and ``{name}.pub``; return both paths.

        Both are written atomically; an existing private file ends up 0600 whatever its old
        mode, and a symbolic link in place of either file is refused (see ``keyfiles``).
        """
        target = Path(directory)
        private_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_pem = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return (
            write_private(target / f"{self.name}.key", private_pem),
            write_public(target / f"{self.name}.pub", public_pem),
        )

    @classmethod
    def load(cls, private_path: str | os.PathLike[str]) -> KeyPair:
        """Read a PEM private key written by :meth:`save`; the name is the file stem.

        A file that group or others may read is refused before it is read (one line).
        """
        path = Path(private_path)
        try:
            key = serialization.load_pem_private_key(read_private(path), password=None)
        except ValueError:
            raise IntegrityError(f"{path}: not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise IntegrityError(f"{path}: got a {type(key).__name__}; an Ed25519 key is required")
        return cls(path.stem, key)


def load_public(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Read a PEM public key written by :meth:`KeyPair.save`."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError:
        raise IntegrityError(f"{path}: no such key file") from None
    except ValueError:
        raise IntegrityError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise IntegrityError(f"{path}: got a {type(key).__name__}; an Ed25519 key is required")
    return key


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 of the raw public key: a short name to compare keys by."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _reply_payload(
    *, server_round: int, node_id: int, base_digest: str, update_digest: str, num_examples: int
) -> bytes:
    return (
        _REPLY_DOMAIN
        + u64(server_round, "server_round")
        + u64(node_id, "node_id")
        + digest_bytes(base_digest, "base_digest")
        + digest_bytes(update_digest, "update_digest")
        + u64(num_examples, "num_examples")
    )


def verify_payload(public_key: Ed25519PublicKey, signature: bytes, payload: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s over ``payload`` (never raises)."""
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


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
    return verify_payload(public_key, signature, payload)

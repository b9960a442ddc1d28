"""Signatures that anchor the run ledger to the server's key.

Payloads (see :mod:`common.crypto.signing` for all of fedshield's signed messages)::

    entry: b"fedshield/ledger-entry/v1\\0" || entry_hash (32 raw bytes)
    head:  b"fedshield/ledger-head/v1\\0" || u64(len(run)) || run (UTF-8) || u64(rounds)
           || head_hash (32 raw bytes)

The adversary is a storage attacker who can rewrite any file of a run but does not hold the
server's private key. An entry signature makes each entry (whose hash covers the previous
entry's hash, its round and its run) writable by the key holder only; the head signature says
where the chain ends, so cutting off its last entries is detected too. The two domains differ,
so an entry signature is never a valid head signature.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from common.crypto.signing import KeyPair, digest_bytes, length_prefixed, u64, verify_payload
from common.errors import IntegrityError

_ENTRY_DOMAIN = b"fedshield/ledger-entry/v1\x00"
_HEAD_DOMAIN = b"fedshield/ledger-head/v1\x00"


def sign_ledger_entry(key: KeyPair, entry_hash: str) -> bytes:
    """Server signature over one ledger entry's hash (the hash covers the whole entry)."""
    return key.private_key.sign(_ENTRY_DOMAIN + digest_bytes(entry_hash, "entry_hash"))


def verify_ledger_entry(public_key: Ed25519PublicKey, entry_hash: str, signature: bytes) -> bool:
    """True when ``signature`` is the server's over this entry hash."""
    try:
        payload = _ENTRY_DOMAIN + digest_bytes(entry_hash, "entry_hash")
    except IntegrityError:
        return False
    return verify_payload(public_key, signature, payload)


def _head_payload(run: str, rounds: int, head_hash: str) -> bytes:
    return (
        _HEAD_DOMAIN
        + length_prefixed(run)
        + u64(rounds, "rounds")
        + digest_bytes(head_hash, "head_hash")
    )


def sign_ledger_head(key: KeyPair, *, run: str, rounds: int, head_hash: str) -> bytes:
    """Server signature that run ``run``'s ledger ends after ``rounds`` entries at ``head_hash``."""
    return key.private_key.sign(_head_payload(run, rounds, head_hash))


def verify_ledger_head(
    public_key: Ed25519PublicKey, *, run: str, rounds: int, head_hash: str, signature: bytes
) -> bool:
    """True when ``signature`` is the server's over this end of this run's ledger."""
    try:
        payload = _head_payload(run, rounds, head_hash)
    except IntegrityError:
        return False
    return verify_payload(public_key, signature, payload)

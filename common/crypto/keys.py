"""Which key each side of a run uses: derived from the seed (simulation) or read from files.

With ``IntegrityConfig.keys_dir`` unset, keys come from :meth:`KeyPair.from_seed` with the
scenario seed, so a simulation needs no files (and protects nothing: see ``from_seed``). With it
set, the server reads ``server_0000.key`` and ``client_{p:04d}.pub``; client ``p`` reads
``client_{p:04d}.key``; the server's public key is ``server_0000.pub`` (the names written by
:meth:`KeyPair.save`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from common.crypto.signing import KeyPair, PublicKey, key_name, load_public
from common.integrity_config import IntegrityConfig

SERVER_ROLE = "server"
CLIENT_ROLE = "client"


def _own_key(config: IntegrityConfig, run_seed: int, role: str, index: int) -> KeyPair:
    if config.keys_dir is None:
        return KeyPair.from_seed(run_seed, role, index)
    return KeyPair.load(Path(config.keys_dir) / f"{key_name(role, index)}.key")


def _public_key(config: IntegrityConfig, run_seed: int, role: str, index: int) -> PublicKey:
    if config.keys_dir is None:
        return KeyPair.from_seed(run_seed, role, index).public_key
    return load_public(Path(config.keys_dir) / f"{key_name(role, index)}.pub")


def server_key(config: IntegrityConfig, *, run_seed: int) -> KeyPair:
    """The server's signing key (ServerApp)."""
    return _own_key(config, run_seed, SERVER_ROLE, 0)


def server_public_key(config: IntegrityConfig, *, run_seed: int) -> PublicKey:
    """What a client verifies broadcasts with (ClientApp)."""
    return _public_key(config, run_seed, SERVER_ROLE, 0)


def client_key(config: IntegrityConfig, *, run_seed: int, partition_id: int) -> KeyPair:
    """Client ``partition_id``'s signing key (ClientApp)."""
    return _own_key(config, run_seed, CLIENT_ROLE, partition_id)


def client_public_keys(
    config: IntegrityConfig, *, run_seed: int, partition_ids: Iterable[int]
) -> dict[int, PublicKey]:
    """Partition -> public key, the ``public_keys`` argument of ``run_gate`` (ServerApp)."""
    return {p: _public_key(config, run_seed, CLIENT_ROLE, p) for p in partition_ids}

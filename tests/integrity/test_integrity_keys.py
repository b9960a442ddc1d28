"""Key provisioning: seed-derived keys by default, PEM files with keys_dir; both interoperate."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from common.crypto.keys import (
    client_key,
    client_public_keys,
    server_key,
    server_public_key,
)
from common.crypto.signing import KeyPair, PublicKey, load_public, sign_broadcast, verify_broadcast
from common.errors import IntegrityError
from common.integrity_config import IntegrityConfig

DIGEST = "c3" * 32


def _round_trips(signer: KeyPair, public_key: PublicKey) -> bool:
    signature = sign_broadcast(signer, server_round=1, global_digest=DIGEST)
    return verify_broadcast(public_key, server_round=1, global_digest=DIGEST, signature=signature)


def test_seed_keys_pair_up_across_server_and_clients() -> None:
    config = IntegrityConfig(enabled=True)
    publics = client_public_keys(config, run_seed=3, partition_ids=range(4))
    for pid in range(4):
        assert _round_trips(client_key(config, run_seed=3, partition_id=pid), publics[pid])
        assert not _round_trips(client_key(config, run_seed=4, partition_id=pid), publics[pid])
    assert _round_trips(server_key(config, run_seed=3), server_public_key(config, run_seed=3))


def test_key_files_are_used_when_keys_dir_is_set(tmp_path: Path) -> None:
    for role, index in [("server", 0), ("client", 0), ("client", 1)]:
        KeyPair.generate(role, index).save(tmp_path)
    config = IntegrityConfig(enabled=True, keys_dir=str(tmp_path))
    publics = client_public_keys(config, run_seed=0, partition_ids=[0, 1])
    assert _round_trips(client_key(config, run_seed=0, partition_id=1), publics[1])
    assert not _round_trips(client_key(config, run_seed=0, partition_id=0), publics[1])
    # Files, not the seed: the seed-derived key of the same slot does not match.
    assert not _round_trips(KeyPair.from_seed(0, "client", 1), publics[1])
    assert _round_trips(server_key(config, run_seed=0), server_public_key(config, run_seed=0))
    with pytest.raises(FileNotFoundError):
        client_key(config, run_seed=0, partition_id=2)


def test_a_non_ed25519_key_file_is_refused(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "client_0000.key").write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "client_0000.pub").write_bytes(
        other.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(IntegrityError, match="Ed25519"):
        KeyPair.load(tmp_path / "client_0000.key")
    with pytest.raises(IntegrityError, match="Ed25519"):
        load_public(tmp_path / "client_0000.pub")

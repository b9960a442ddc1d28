"""Key provisioning: seed-derived keys by default, PEM files with keys_dir; both interoperate.

The adversary of the key files is another local account (or whoever can plant a file or a
symlink in the key directory before fedshield writes there).
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from common.crypto.keys import (
    SEED_DERIVED,
    TRUST_ENV,
    ClientTrust,
    client_key,
    client_public_keys,
    generate_keys,
    key_files_problem,
    key_source,
    server_key,
    server_public_key,
)
from common.crypto.signing import KeyPair, PublicKey, load_public, sign_reply, verify_reply
from common.errors import IntegrityError
from common.integrity_config import IntegrityConfig
from fedshield.cli import main

DIGEST = "c3" * 32
CLAIMS = {"server_round": 1, "node_id": 7, "base_digest": DIGEST, "update_digest": DIGEST}


def _round_trips(signer: KeyPair, public_key: PublicKey) -> bool:
    signature = sign_reply(signer, num_examples=3, **CLAIMS)  # type: ignore[arg-type]
    return verify_reply(public_key, num_examples=3, signature=signature, **CLAIMS)  # type: ignore[arg-type]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_seed_keys_pair_up_across_server_and_clients() -> None:
    config = IntegrityConfig(enabled=True)
    publics = client_public_keys(config, run_seed=3, partition_ids=range(4))
    for pid in range(4):
        assert _round_trips(client_key(config, run_seed=3, partition_id=pid), publics[pid])
        assert not _round_trips(client_key(config, run_seed=4, partition_id=pid), publics[pid])
    assert _round_trips(server_key(config, run_seed=3), server_public_key(config, run_seed=3))
    assert key_source(config) == SEED_DERIVED == "seed-derived (no protection)"


def test_generated_key_files_are_used_when_keys_dir_is_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "generate", str(tmp_path), "--clients", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"ok: wrote 3 key pairs to {tmp_path} (private keys 0600); set integrity.keys_dir to it"
    ]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{n}.{e}" for n in ("client_0000", "client_0001", "server_0000")
                     for e in ("key", "pub")]  # fmt: skip
    assert {_mode(p) for p in tmp_path.glob("*.key")} == {0o600}
    config = IntegrityConfig(enabled=True, keys_dir=str(tmp_path))
    assert key_source(config) == f"files in {tmp_path}"
    assert key_files_problem(config, num_clients=2) is None
    publics = client_public_keys(config, run_seed=0, partition_ids=[0, 1])
    assert _round_trips(client_key(config, run_seed=0, partition_id=1), publics[1])
    assert not _round_trips(client_key(config, run_seed=0, partition_id=0), publics[1])
    # Files, not the seed: the seed-derived key of the same slot does not match.
    assert not _round_trips(KeyPair.from_seed(0, "client", 1), publics[1])
    assert _round_trips(server_key(config, run_seed=0), server_public_key(config, run_seed=0))
    with pytest.raises(IntegrityError, match="client_0002.key: no such key file"):
        client_key(config, run_seed=0, partition_id=2)
    assert key_files_problem(config, num_clients=3) == (
        f"integrity.keys_dir: {tmp_path / 'client_0002.key'}: no such key file"
    )


def test_an_overwritten_private_key_ends_up_0600(tmp_path: Path) -> None:
    old = tmp_path / "server_0000.key"
    old.write_bytes(b"old secret")
    old.chmod(0o644)  # e.g. copied with a permissive umask
    generate_keys(tmp_path, num_clients=1)
    assert _mode(old) == 0o600
    assert old.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert _mode(tmp_path / "server_0000.pub") == 0o644


@pytest.mark.parametrize("name", ["client_0000.key", "server_0000.pub"])
def test_a_symlink_in_place_of_a_key_file_is_refused(name: str, tmp_path: Path) -> None:
    readable = tmp_path / "public_place"
    readable.write_bytes(b"")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / name).symlink_to(readable)
    with pytest.raises(IntegrityError, match="symbolic link"):
        generate_keys(keys, num_clients=1)
    assert readable.read_bytes() == b""  # nothing was written through the link


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_loading_a_private_key_others_may_read_is_refused_in_one_line(
    mode: int, tmp_path: Path
) -> None:
    private, _ = KeyPair.generate("server").save(tmp_path)
    private.chmod(mode)
    with pytest.raises(IntegrityError) as caught:
        KeyPair.load(private)
    assert str(caught.value) == (
        f"{private}: permissions {mode:04o} let group or others read it; a private key must "
        f"be 0600 (chmod 600 {private})"
    )
    config = IntegrityConfig(enabled=True, keys_dir=str(tmp_path))
    assert key_files_problem(config, num_clients=0) == f"integrity.keys_dir: {caught.value}"
    private.chmod(0o600)
    assert KeyPair.load(private).name == "server_0000"


def test_keys_generate_refuses_a_bad_count_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "generate", str(tmp_path), "--clients", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: --clients: got 0; must be >= 1"]
    assert not any(tmp_path.iterdir())


def test_client_trust_travels_in_the_environment_not_in_messages() -> None:
    trust = ClientTrust.of(IntegrityConfig(enabled=True, keys_dir="/k"), 5)
    environ = trust.environment()
    assert ClientTrust.from_environment(environ) == trust
    assert ClientTrust.from_environment({}) is None
    with pytest.raises(IntegrityError, match=TRUST_ENV):
        ClientTrust.from_environment({TRUST_ENV: "{}"})
    seeded = ClientTrust.of(IntegrityConfig(enabled=True), 5)
    assert _round_trips(KeyPair.from_seed(5, "server"), seeded.server_public_key())


def test_a_non_ed25519_key_file_is_refused(tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    private = tmp_path / "client_0000.key"
    private.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    (tmp_path / "client_0000.pub").write_bytes(
        other.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(IntegrityError, match="Ed25519"):
        KeyPair.load(private)
    with pytest.raises(IntegrityError, match="Ed25519"):
        load_public(tmp_path / "client_0000.pub")

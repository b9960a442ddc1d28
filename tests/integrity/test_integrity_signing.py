"""Ed25519 keys from the seed, key files, and the binding of every signed field."""

from __future__ import annotations

import hashlib
import stat
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from common.crypto.digest import digest_arrays
from common.crypto.ledger_signing import sign_ledger_entry, sign_ledger_head, verify_ledger_head
from common.crypto.signing import KeyPair, load_public, sign_reply, verify_reply
from common.crypto.train_signing import check_train, sign_train
from common.errors import IntegrityError
from tests.integrity._builders import F32, global_model

D1 = "a1" * 32
D2 = "b2" * 32


@dataclass(frozen=True)
class Claims:
    """The signed fields of a reply (a node id above 2**63 checks the unsigned encoding)."""

    server_round: int = 3
    node_id: int = 2**63 + 5
    base_digest: str = D1
    update_digest: str = D2
    num_examples: int = 17

    def sign(self, key: KeyPair) -> bytes:
        return sign_reply(
            key,
            server_round=self.server_round,
            node_id=self.node_id,
            base_digest=self.base_digest,
            update_digest=self.update_digest,
            num_examples=self.num_examples,
        )

    def verify(self, public_key: Ed25519PublicKey, signature: bytes) -> bool:
        return verify_reply(
            public_key,
            server_round=self.server_round,
            node_id=self.node_id,
            base_digest=self.base_digest,
            update_digest=self.update_digest,
            num_examples=self.num_examples,
            signature=signature,
        )


REPLY = Claims()


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_keys_are_deterministic_in_seed_role_and_index() -> None:
    key = KeyPair.from_seed(7, "client", 3)
    assert _raw(KeyPair.from_seed(7, "client", 3).public_key) == _raw(key.public_key)
    others = [
        KeyPair.from_seed(8, "client", 3),
        KeyPair.from_seed(7, "server", 3),
        KeyPair.from_seed(7, "client", 4),
        KeyPair.from_seed(73, "client", 0),  # "7/client/3" vs "73/client/0": no ambiguity
    ]
    assert len({_raw(k.public_key) for k in [key, *others]}) == 5
    assert key.name == "client_0003"


def test_key_derivation_follows_the_documented_formula() -> None:
    # Restated from the docstring, so a change of derivation (which would orphan saved
    # simulation keys) fails here.
    text = b"42/server/0"
    seed = hashlib.sha256(b"fedshield/keypair/v1\x00" + struct.pack("<Q", len(text)) + text)
    expected = Ed25519PrivateKey.from_private_bytes(seed.digest()).public_key()
    assert _raw(KeyPair.from_seed(42, "server").public_key) == _raw(expected)


@pytest.mark.parametrize(("role", "index"), [("", 0), ("a/b", 0), ("client", -1)])
def test_bad_role_or_index_is_refused(role: str, index: int) -> None:
    with pytest.raises(IntegrityError):
        KeyPair.from_seed(1, role, index)


def test_save_and_load_round_trip_with_a_private_file(tmp_path: Path) -> None:
    key = KeyPair.from_seed(5, "client", 2)
    private_path, public_path = key.save(tmp_path / "keys")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    loaded = KeyPair.load(private_path)
    assert loaded.name == "client_0002"
    signature = REPLY.sign(loaded)
    assert REPLY.verify(load_public(public_path), signature)
    assert REPLY.verify(key.public_key, signature)


def test_every_reply_field_is_bound_by_the_signature() -> None:
    key = KeyPair.from_seed(1, "client", 0)
    signature = REPLY.sign(key)
    assert REPLY.verify(key.public_key, signature)
    for changed in (
        replace(REPLY, server_round=4),
        replace(REPLY, node_id=6),
        replace(REPLY, base_digest=D2),
        replace(REPLY, update_digest=D1),
        replace(REPLY, num_examples=18),
    ):
        assert not changed.verify(key.public_key, signature)
    other = KeyPair.from_seed(1, "client", 1)
    assert not REPLY.verify(other.public_key, signature)


@pytest.mark.parametrize(
    "bad",
    [
        replace(REPLY, base_digest="xyz"),
        replace(REPLY, update_digest=D1.upper()),
        replace(REPLY, server_round=-1),
        replace(REPLY, node_id=2**64),
    ],
)
def test_malformed_claims_fail_verification_and_cannot_be_signed(bad: Claims) -> None:
    key = KeyPair.from_seed(1, "client", 0)
    assert not bad.verify(key.public_key, REPLY.sign(key))
    with pytest.raises(IntegrityError):
        bad.sign(key)


NODE = 2**63 + 9
CONFIG = {"server-round": 3, "scenario": '{"seed": 1}', "global-digest": D1}


def _train_ok(
    key: Ed25519PublicKey, signature: bytes, arrays: list[F32], **changes: object
) -> bool:
    fields: dict[str, object] = {"server_round": 3, "node_id": NODE, "global_digest": D1}
    fields.update(changes)
    return check_train(key, arrays=arrays, config=fields.pop("config", CONFIG), exclude=("sig",),
                       signature=signature, **fields)  # type: ignore[arg-type]  # fmt: skip


def test_domain_separation_between_train_reply_and_ledger_signatures() -> None:
    key = KeyPair.from_seed(1, "server")
    arrays = global_model(3)
    config = {**CONFIG, "global-digest": digest_arrays(arrays)}
    train = sign_train(key, server_round=3, node_id=NODE, global_digest=digest_arrays(arrays),
                       config=config)  # fmt: skip
    assert _train_ok(key.public_key, train, arrays, global_digest=digest_arrays(arrays),
                     config=config)  # fmt: skip
    assert not REPLY.verify(key.public_key, train)
    reply = REPLY.sign(key)
    assert not _train_ok(key.public_key, reply, arrays, global_digest=digest_arrays(arrays),
                         config=config)  # fmt: skip
    entry = sign_ledger_entry(key, D1)
    assert not verify_ledger_head(key.public_key, run="", rounds=0, head_hash=D1, signature=entry)
    head = sign_ledger_head(key, run="r", rounds=2, head_hash=D1)
    assert verify_ledger_head(key.public_key, run="r", rounds=2, head_hash=D1, signature=head)
    assert not verify_ledger_head(key.public_key, run="r", rounds=1, head_hash=D1, signature=head)
    assert not verify_ledger_head(key.public_key, run="s", rounds=2, head_hash=D1, signature=head)


def test_every_part_of_the_train_message_is_bound_by_the_signature() -> None:
    key = KeyPair.from_seed(9, "server")
    arrays = global_model(3)
    digest = digest_arrays(arrays)
    config = {**CONFIG, "global-digest": digest, "flag": True, "lr": 0.1, "raw": b"\x00"}
    signature = sign_train(key, server_round=3, node_id=NODE, global_digest=digest, config=config)
    assert _train_ok(key.public_key, signature, arrays, global_digest=digest, config=config)
    # The signature itself travels in the record, under an excluded key.
    with_sig = {**config, "sig": signature}
    assert _train_ok(key.public_key, signature, arrays, global_digest=digest, config=with_sig)
    edits: list[dict[str, object]] = [
        {"server_round": 4},
        {"node_id": NODE + 1},
        {"config": {**config, "scenario": '{"seed": 2}'}},
        {"config": {**config, "flag": 1}},  # same value, another type
        {"config": {**config, "lr": -0.1}},
        {"config": {**config, "extra": ""}},  # an added entry
        {"config": {k: v for k, v in config.items() if k != "raw"}},  # a removed one
    ]
    for edit in edits:
        assert not _train_ok(key.public_key, signature, arrays, global_digest=digest, **edit)
    assert not _train_ok(KeyPair.from_seed(9, "client").public_key, signature, arrays,
                         global_digest=digest, config=config)  # fmt: skip


def test_altered_weights_are_detected_by_the_client_in_200_trials() -> None:
    server = KeyPair.from_seed(9, "server")
    arrays = global_model(3)
    digest = digest_arrays(arrays)
    config = {**CONFIG, "global-digest": digest}
    signature = sign_train(server, server_round=3, node_id=NODE, global_digest=digest,
                           config=config)  # fmt: skip

    def accepted(arrays: list[F32], claimed_digest: str) -> bool:
        claimed = {**config, "global-digest": claimed_digest}
        return _train_ok(server.public_key, signature, arrays, global_digest=claimed_digest,
                         config=claimed)  # fmt: skip

    assert accepted(arrays, digest)
    rng = np.random.default_rng(11)
    for trial in range(200):
        altered = [a.copy() for a in arrays]
        target = altered[trial % len(altered)]
        if trial % 2:  # bit flip
            target.reshape(-1).view(np.uint8)[rng.integers(target.nbytes)] ^= np.uint8(
                1 << int(rng.integers(8))
            )
        else:  # additive noise
            target += rng.normal(0, 1e-3, target.shape).astype(np.float32)
        assert not accepted(altered, digest)
        # Re-digesting the altered model does not help without the server's key.
        assert not accepted(altered, digest_arrays(altered))

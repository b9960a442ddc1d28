"""Session fixtures of the integrity tests: seeded client keys."""

from __future__ import annotations

import pytest

from common.crypto.signing import KeyPair, PublicKey
from tests.integrity._builders import NUM_CLIENTS, RUN_SEED


@pytest.fixture(scope="session")
def client_keys() -> dict[int, KeyPair]:
    return {pid: KeyPair.from_seed(RUN_SEED, "client", pid) for pid in range(NUM_CLIENTS)}


@pytest.fixture(scope="session")
def public_keys(client_keys: dict[int, KeyPair]) -> dict[int, PublicKey]:
    return {pid: key.public_key for pid, key in client_keys.items()}

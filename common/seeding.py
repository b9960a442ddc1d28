"""Deterministic seeds for every random choice of a run, derived from the scenario seed.

``derive_seed(seed, "train", round, partition_id)`` gives the same integer on every machine and
in every Ray worker, so the outcome never depends on which actor served which client.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, *labels: int | str) -> int:
    """A 31-bit seed from SHA-256 over the root seed and the labels (domain separation)."""
    text = "/".join([str(seed), *(str(label) for label in labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def derive_rng(seed: int, *labels: int | str) -> np.random.Generator:
    """A numpy ``Generator`` seeded with :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(seed, *labels))

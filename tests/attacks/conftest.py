"""Fixtures shared by the attack tests: read-only honest updates and counts."""

from __future__ import annotations

import numpy as np
import pytest
from attack_test_helpers import read_only
from numpy.typing import NDArray


@pytest.fixture
def honest() -> NDArray[np.float32]:
    """12 honest (50,) updates around +0.5: the round moves most coordinates up."""
    rng = np.random.default_rng(0)
    return read_only(rng.normal(0.5, 1.0, size=(12, 50)).astype(np.float32))


@pytest.fixture
def honest_counts() -> NDArray[np.int64]:
    """Every honest client reports 10 examples."""
    return read_only(np.full(12, 10, dtype=np.int64))

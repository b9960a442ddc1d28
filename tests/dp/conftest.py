"""Fixtures of the DP tests: quiet TensorFlow and the digits data as (N, 8, 8, 1) images."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from tests.dp._data import Digits, load_digit_images  # noqa: E402


@pytest.fixture(scope="session")
def digits() -> Digits:
    """All 1797 digits, pixels scaled to [0, 1] (x / 16), read-only."""
    return load_digit_images()

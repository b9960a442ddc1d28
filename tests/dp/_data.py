"""Shared test data of the DP tests: the digits as (N, 8, 8, 1) images in [0, 1]."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits

Digits = tuple[NDArray[np.float32], NDArray[np.int64]]


def load_digit_images() -> Digits:
    """All 1797 digits, pixels scaled to [0, 1] (x / 16), read-only."""
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    y = data.target.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y

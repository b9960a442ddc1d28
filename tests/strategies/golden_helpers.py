"""Helpers of the golden-number tests: one-coordinate columns, unit counts, one-round runs.

Imported by the test modules of this folder (pytest puts the folder on sys.path).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

import strategies

Vec = NDArray[np.floating[Any]]
Counts = NDArray[np.int64]


def col(*values: float) -> Vec:
    """One-coordinate updates: a column of n rows."""
    return np.array(values, dtype=np.float64)[:, None]


def ones(n: int) -> Counts:
    return np.ones(n, dtype=np.int64)


def agg(name: str, updates: Vec, num_examples: Counts, **params: Any) -> Vec:
    """One round of rule ``name`` from its initial state."""
    return strategies.get_aggregator(name, **params)(updates, num_examples)


def pre(name: str, updates: Vec, num_examples: Counts, **params: Any) -> tuple[Vec, Counts]:
    """One round of pre-aggregator ``name`` from its initial state, with ``default_rng(0)``."""
    stage = strategies.get_pre_aggregator(name, params)
    state = stage.init(updates.shape[1])
    out, counts, _ = stage.update(updates, num_examples, state, rng=np.random.default_rng(0))
    return out, counts

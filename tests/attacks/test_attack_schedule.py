"""Who is malicious and when the attack acts: determinism, counts and rounding."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from common.attack_schedule import is_active, select_malicious
from common.errors import ConfigError


@pytest.mark.parametrize(
    ("num_clients", "amount", "count"),
    [
        (10, 3, 3),
        (10, 0, 0),
        (10, 0.25, 2),
        (10, 0.29, 2),
        (7, 0.5, 3),
        (100, 0.2, 20),
        (10, 0.0, 0),
    ],
)
def test_select_malicious_counts_round_down(
    num_clients: int, amount: int | float, count: int
) -> None:
    chosen = select_malicious(num_clients, amount, seed=11)
    assert len(chosen) == count
    assert all(0 <= i < num_clients for i in chosen)


def test_select_malicious_is_deterministic_and_seed_dependent() -> None:
    first = select_malicious(50, 10, seed=3)
    assert first == select_malicious(50, 10, seed=3)
    assert any(select_malicious(50, 10, seed=s) != first for s in range(4, 8))


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (11, r"count must be in \[0, 10\]"),
        (1.0, r"fraction must be in \[0, 1\)"),
        (-1, "count"),
        (True, "count or a fraction"),
    ],
)
def test_select_malicious_bad_amounts(amount: int | float, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"attack\.malicious: got .*{message}"):
        select_malicious(10, amount, seed=0)


def test_is_active_window() -> None:
    kwargs: dict[str, Any] = {"start_round": 3, "end_round": 5, "probability": 1.0, "seed": 0}
    assert [is_active(r, **kwargs) for r in range(1, 8)] == [
        False,
        False,
        True,
        True,
        True,
        False,
        False,
    ]
    assert is_active(10**6, start_round=2, end_round=None, probability=1.0, seed=0)


def test_is_active_probability_is_seeded_per_round() -> None:
    runs = [
        [
            is_active(r, start_round=1, end_round=None, probability=0.3, seed=9)
            for r in range(1, 2001)
        ]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]  # every colluder computes the same answer
    assert abs(np.mean(runs[0]) - 0.3) < 0.04
    other = [
        is_active(r, start_round=1, end_round=None, probability=0.3, seed=10)
        for r in range(1, 2001)
    ]
    assert other != runs[0]


def test_is_active_bad_probability() -> None:
    with pytest.raises(ConfigError, match=r"attack\.probability: got 0\.0"):
        is_active(1, start_round=1, end_round=None, probability=0.0, seed=0)

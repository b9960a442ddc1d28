"""Helpers for the attack tests: read-only arrays and small reference aggregation rules.

The real rules live in strategies/ (another module, not imported here).

Each is ``(updates (n, d), num_examples (n,)) -> (d,)``, the signature an omniscient attack
receives. They are written for clarity, not speed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from attacks import Forgery, RoundView, get_attack
from attacks.forging import CollusionAttack

T = TypeVar("T", bound=np.generic)

Rule = Callable[[NDArray[np.floating[Any]], NDArray[np.int64]], NDArray[Any]]


def read_only(array: NDArray[T]) -> NDArray[T]:
    """``array`` with writes disabled, so an attack that mutates its input raises."""
    array.setflags(write=False)
    return array


def mean(updates: NDArray[np.floating[Any]], counts: NDArray[np.int64]) -> NDArray[Any]:
    """Unweighted mean."""
    out: NDArray[Any] = np.asarray(updates, dtype=np.float64).mean(axis=0)
    return out


def median(updates: NDArray[np.floating[Any]], counts: NDArray[np.int64]) -> NDArray[Any]:
    """Coordinate-wise median."""
    out: NDArray[Any] = np.median(np.asarray(updates, dtype=np.float64), axis=0)
    return out


def trimmed_mean(trim: int) -> Rule:
    """Coordinate-wise mean of the values left after dropping the ``trim`` largest and smallest."""

    def rule(updates: NDArray[np.floating[Any]], counts: NDArray[np.int64]) -> NDArray[Any]:
        ordered = np.sort(np.asarray(updates, dtype=np.float64), axis=0)
        out: NDArray[Any] = ordered[trim : len(ordered) - trim].mean(axis=0)
        return out

    return rule


def krum(num_byzantine: int) -> Rule:
    """Krum (Blanchard et al. 2017): the update with the least sum of squared distances to its
    ``n - f - 2`` nearest neighbours."""

    def rule(updates: NDArray[np.floating[Any]], counts: NDArray[np.int64]) -> NDArray[Any]:
        data = np.asarray(updates, dtype=np.float64)
        n = len(data)
        dist = ((data[:, None, :] - data[None, :, :]) ** 2).sum(axis=-1)
        scores = np.sort(dist, axis=1)[:, 1 : n - num_byzantine - 1].sum(axis=1)
        out: NDArray[Any] = data[int(np.argmin(scores))]
        return out

    return rule


def view(
    honest: NDArray[Any] | None,
    num_malicious: int,
    *,
    aggregator: Rule | None = None,
    own: NDArray[Any] | None = None,
    num_clients: int | None = None,
    seed: int = 0,
) -> RoundView:
    """A round of ``honest`` updates and ``num_malicious`` colluders (own updates zero unless
    given), showing the aggregator only when one is passed."""
    if own is None:
        assert honest is not None
        own = np.zeros((num_malicious, honest.shape[1]), dtype=honest.dtype)
    h = 0 if honest is None else honest.shape[0]
    counts = None if honest is None else read_only(np.full(h, 5, dtype=np.int64))
    return RoundView(
        own=own,
        num_clients=h + own.shape[0] if num_clients is None else num_clients,
        rng=np.random.default_rng(seed),
        honest=honest,
        honest_num_examples=counts,
        aggregator=aggregator,
    )


def forge(name: str, round_view: RoundView, **params: Any) -> Forgery:
    """Build the collusion attack ``name`` with ``params`` and forge on ``round_view``."""
    attack = get_attack(name, **params)
    assert isinstance(attack, CollusionAttack)
    return attack.forge(round_view)

"""Per-client figures of one round: each update's norm and how it sits against the aggregate.

For the delta u_i of client i and the aggregate step g (the new global minus the old):

* ``update_norm`` = ||u_i||_2;
* ``cosine_to_aggregate`` = <u_i, g> / (||u_i|| ||g||) (NaN when either is zero, or the round
  was skipped and has no aggregate);
* ``distance_to_aggregate`` = ||u_i - g||_2;
* ``selected``: the aggregate is this very update, ||u_i - g|| <= 1e-5 ||g|| (float32 round
  trip through the global weights): what a single-selection rule such as Krum (Blanchard et al.
  2017) chose. Rules that average several rows select none by this test.

Computed on every stacked reply, rejected ones included (a rejected poisoner's norm is the
evidence). Pure numpy, no identities beyond the partition ids the server already has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_SELECTED_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ClientRound:
    """One client's update in one round (see the module docstring for each figure)."""

    partition_id: int
    update_norm: float
    cosine_to_aggregate: float
    distance_to_aggregate: float
    selected: bool


def client_statistics(
    partition_ids: Sequence[int],
    deltas: NDArray[np.float32],
    step: NDArray[np.float32] | None,
) -> tuple[ClientRound, ...]:
    """The figures of each row of ``deltas`` against ``step`` (None for a skipped round)."""
    rows = deltas.astype(np.float64)
    norms = np.linalg.norm(rows, axis=1)
    if step is None:
        nan = math.nan
        return tuple(
            ClientRound(int(p), float(n), nan, nan, False)
            for p, n in zip(partition_ids, norms, strict=True)
        )
    aggregate = step.astype(np.float64)
    aggregate_norm = float(np.linalg.norm(aggregate))
    distances = np.linalg.norm(rows - aggregate, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = rows @ aggregate / (norms * aggregate_norm)
    return tuple(
        ClientRound(
            partition_id=int(p),
            update_norm=float(n),
            cosine_to_aggregate=float(c) if np.isfinite(c) else math.nan,
            distance_to_aggregate=float(d),
            selected=bool(aggregate_norm > 0 and d <= _SELECTED_TOLERANCE * aggregate_norm),
        )
        for p, n, c, d in zip(partition_ids, norms, cosines, distances, strict=True)
    )

"""The adversary's read-only view of a deployed rule at its current state."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

from strategies.base import Aggregate, ChainState, ClientIds, Counts, Rule, Updates
from strategies.layout import Inspection


def as_aggregator(
    rule: Rule,
    state: ChainState,
    *,
    rng: np.random.Generator,
    reference: Aggregate | None = None,
    client_ids: ClientIds | None = None,
    inspection: Inspection | None = None,
) -> Callable[[Updates, Counts], Aggregate]:
    """A read-only view of a deployed ``rule`` at its current ``state``: what an omniscient
    adversary sees.

    Each call runs ``rule.update`` with ``state`` and a fresh deep copy of ``rng`` as it was
    when the view was made, so every candidate forgery is scored against exactly what the
    server will compute this round, and it returns the aggregate only: the new state is
    discarded, and neither ``state`` (frozen) nor the caller's generator ever changes.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("centered_clipping", radius=1.0)
    >>> state = rule.init(1)
    >>> view = as_aggregator(rule, state, rng=np.random.default_rng(0))
    >>> view(np.array([[3.0], [3.0]]), np.ones(2, dtype=np.int64))
    array([1.])
    >>> view(np.array([[3.0], [3.0]]), np.ones(2, dtype=np.int64))  # state unchanged
    array([1.])
    """
    snapshot = copy.deepcopy(rng)

    def aggregate(updates: Updates, num_examples: Counts) -> Aggregate:
        generator = copy.deepcopy(snapshot)
        return rule.update(
            updates,
            num_examples,
            state,
            rng=generator,
            reference=reference,
            client_ids=client_ids,
            inspection=inspection,
        )[0]

    return aggregate

"""The chain's checks of one round's inputs: shapes and bound, the reference update, the client
ids. Each failure is one line naming the rule (:class:`common.errors.AggregationError`)."""

from __future__ import annotations

import numpy as np

from common.errors import AggregationError
from strategies.base import Aggregate, ClientIds, Counts, Updates


def check_round(name: str, updates: Updates, num_examples: Counts, needed: int, bound: str) -> None:
    """Raise :class:`AggregationError` (one line) unless the inputs fit a rule with this bound."""
    if updates.ndim != 2 or not np.issubdtype(updates.dtype, np.floating):
        raise AggregationError(
            f"{name}: updates must be a 2-D float array (n_clients, n_params), "
            f"got shape {updates.shape} dtype {updates.dtype}"
        )
    n = updates.shape[0]
    if num_examples.shape != (n,):
        raise AggregationError(
            f"{name}: num_examples must have shape ({n},), got {num_examples.shape}"
        )
    if n < needed:
        raise AggregationError(
            f"{name}: received n={n} updates, its bound needs n >= {needed} ({bound})"
        )


def check_reference(name: str, reference: Aggregate | None, num_params: int) -> Aggregate:
    """``reference`` if it is a finite ``(num_params,)`` float array, else one-line error."""
    if reference is None:
        raise AggregationError(
            f"{name}: needs reference= (the server's own update this round), got none"
        )
    if reference.shape != (num_params,) or not np.issubdtype(reference.dtype, np.floating):
        raise AggregationError(
            f"{name}: reference must be a ({num_params},) float array, "
            f"got shape {reference.shape} dtype {reference.dtype}"
        )
    if not np.all(np.isfinite(reference)):
        raise AggregationError(f"{name}: reference contains NaN or Inf")
    return reference


def check_client_ids(name: str, client_ids: ClientIds | None, n: int) -> ClientIds:
    """``client_ids`` if it is ``(n,)`` distinct integers, else a one-line error."""
    if client_ids is None:
        raise AggregationError(f"{name}: needs client_ids (pseudonymous, stable ids), got none")
    ids = np.asarray(client_ids)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise AggregationError(
            f"{name}: client_ids must be ({n},) integers, got shape {ids.shape} dtype {ids.dtype}"
        )
    if len(np.unique(ids)) != n:
        raise AggregationError(f"{name}: client_ids must be distinct within a round")
    return ids.astype(np.int64)

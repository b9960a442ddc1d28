"""Iterative robust means: geometric median (RFA) and centred clipping."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, RuleParams, Updates
from strategies.registries import AGGREGATORS


class GeometricMedianParams(RuleParams):
    """Smoothed Weiszfeld iteration settings."""

    smoothing: float = Field(default=1e-6, gt=0, allow_inf_nan=False)
    """nu in Pillutla et al. 2022: distances below nu count as nu (avoids division by 0)."""
    max_iterations: int = Field(default=100, ge=1)
    """T in Pillutla et al. 2022: Weiszfeld steps at most."""
    tolerance: float = Field(default=1e-6, ge=0, allow_inf_nan=False)
    """Stop when the objective improves by less than tolerance * objective."""


@AGGREGATORS.register("geometric_median", GeometricMedianParams, kind="robust-mean")
def geometric_median(
    updates: Updates,
    num_examples: Counts,
    *,
    smoothing: float = 1e-6,
    max_iterations: int = 100,
    tolerance: float = 1e-6,
) -> Aggregate:
    """Geometric median ``argmin_v sum_i ||v - x_i||`` by the smoothed Weiszfeld iteration:
    ``v <- sum_i b_i x_i / sum_i b_i`` with ``b_i = 1 / max(nu, ||v - x_i||)``, from the mean,
    until ``|g(v_old) - g(v)| <= tol * g(v)`` (``g(v) = sum_i ||v - x_i||``) or T steps.

    Pillutla, Kakade, Harchaoui 2022, "Robust Aggregation for Federated Learning" (RFA), with
    equal weights alpha_i = 1/n (example counts are self-reported, so ignored). Bound: none
    (n >= 1); breakdown point 1/2 (f < n/2). When the median is a data point, where Weiszfeld
    converges only sublinearly, that point is returned exactly: the data point nearest the
    last iterate is checked with Vardi & Zhang's (2000) optimality test.
    """
    del num_examples  # robust rules do not trust self-reported counts
    n = updates.shape[0]
    centre = _math.mix(np.full(n, 1.0 / n), updates)
    distance = np.sqrt(_math.squared_distances_to(updates, centre))
    objective = float(distance.sum())
    for _ in range(max_iterations):
        inverse = 1.0 / np.maximum(distance, smoothing)
        centre = _math.mix(inverse / inverse.sum(), updates)
        distance = np.sqrt(_math.squared_distances_to(updates, centre))
        previous, objective = objective, float(distance.sum())
        if abs(previous - objective) <= tolerance * objective:
            break
    vertex = int(np.argmin(distance))
    if _is_geometric_median(updates, vertex):
        return _math.like(updates[vertex], updates)  # astype copies: the caller owns it
    return centre


def _is_geometric_median(updates: Updates, k: int) -> bool:
    """Whether data point ``x_k`` is the exact geometric median (Vardi & Zhang 2000).

    With equal weights, ``x_k`` minimises ``sum_i ||v - x_i||`` iff
    ``||sum_{i: x_i != x_k} (x_k - x_i) / ||x_k - x_i|| || <= #{i: x_i = x_k}``. Weiszfeld's
    iteration converges only sublinearly to such a vertex (the step towards it shrinks with
    the distance), so it is tested once at the data point nearest the final iterate.
    """
    to_vertex = np.sqrt(_math.squared_distances_to(updates, updates[k]))
    away = to_vertex > 0.0
    inverse = np.where(away, 1.0 / np.where(away, to_vertex, 1.0), 0.0)
    # sum_i c_i (x_k - x_i) = (sum_i c_i) x_k - sum_i c_i x_i, one pass over the rows
    pull = inverse.sum() * updates[k].astype(np.float64) - _math.mix(inverse, updates)
    return bool(np.linalg.norm(pull) <= np.count_nonzero(~away))


class CenteredClippingParams(RuleParams):
    """Centred clipping: radius and inner iterations."""

    carries_state = True
    radius: float = Field(gt=0, allow_inf_nan=False)
    """tau in Karimireddy et al. 2021: the clipping radius around the current centre."""
    iterations: int = Field(default=1, ge=1)
    """L in Karimireddy et al. 2021: clipping steps per round (the paper uses 1)."""


@AGGREGATORS.register("centered_clipping", CenteredClippingParams, kind="robust-mean")
def centered_clipping(
    updates: Updates,
    num_examples: Counts,
    *,
    previous: _math.F64,
    radius: float,
    iterations: int = 1,
) -> Aggregate:
    """Centred clipping: from ``v_0 = previous`` (last round's aggregate, zeros at init),
    ``v_{l+1} = v_l + 1/n sum_i (x_i - v_l) min(1, tau / ||x_i - v_l||)`` for L steps.

    Karimireddy, He, Jaggi 2021, "Learning from History for Byzantine Robust Optimization"
    (the server-side rule; the state is the previous aggregate, i.e. the momentum
    when clients send momentum). Bound: none (n >= 1); the paper's guarantee assumes a small
    Byzantine fraction f/n. Example counts are ignored.
    """
    del num_examples  # robust rules do not trust self-reported counts
    n = updates.shape[0]
    centre = np.array(previous, dtype=np.float64)
    for _ in range(iterations):
        factors = _math.clip_factors(_math.squared_distances_to(updates, centre), radius)
        # v + 1/n sum c_i (x_i - v) = (1 - sum c_i / n) v + (c/n) @ X: one pass over X.
        step = _math.mix(factors / n, updates)
        centre = (1.0 - factors.sum() / n) * centre + step
    return _math.like(centre, updates)

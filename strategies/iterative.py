"""Iterative robust means: geometric median (RFA) and centred clipping."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from pydantic import Field

from common.errors import AggregationError
from strategies import _math
from strategies.base import Aggregate, Counts, RuleStage, StatelessRule, Updates, frozen
from strategies.registries import aggregator


def geometric_median(
    updates: Updates, *, smoothing: float, max_iterations: int, tolerance: float
) -> Aggregate:
    """Smoothed Weiszfeld from the mean, then Vardi & Zhang's vertex test (see
    :class:`GeometricMedian`)."""
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
    if _is_geometric_median(updates, vertex, objective):
        return _math.like(updates[vertex], updates)  # astype copies: the caller owns it
    return centre


# Relative slack when comparing two objectives computed in float64 from the same rows: their
# rounding error is below n * d * eps_64 relative, about 1e-8 at n * d = 1e8, far below this.
_OBJECTIVE_SLACK = 1e-6


def _is_geometric_median(updates: Updates, k: int, objective: float) -> bool:
    """Whether data point ``x_k`` is the exact geometric median (Vardi & Zhang 2000).

    With equal weights, ``x_k`` minimises ``sum_i ||v - x_i||`` iff
    ``||sum_{i: x_i != x_k} (x_k - x_i) / ||x_k - x_i|| || <= #{i: x_i = x_k}``. Weiszfeld's
    iteration converges only sublinearly to such a vertex (the step towards it shrinks with
    the distance), so it is tested once at the data point nearest the final iterate. The test
    costs two passes over X; the first (the distances to ``x_k``) settles the usual case on its
    own: if ``x_k``'s objective exceeds ``objective``, the final iterate's, then ``x_k`` is not
    the minimiser and the second pass is skipped.
    """
    to_vertex = np.sqrt(_math.squared_distances_to(updates, updates[k]))
    if float(to_vertex.sum()) > objective * (1.0 + _OBJECTIVE_SLACK):
        return False
    away = to_vertex > 0.0
    inverse = np.where(away, 1.0 / np.where(away, to_vertex, 1.0), 0.0)
    # sum_i c_i (x_k - x_i) = (sum_i c_i) x_k - sum_i c_i x_i, one pass over the rows
    pull = inverse.sum() * updates[k].astype(np.float64) - _math.mix(inverse, updates)
    return bool(np.linalg.norm(pull) <= np.count_nonzero(~away))


def centered_clipping(
    updates: Updates, previous: _math.F64, *, radius: float, iterations: int
) -> Aggregate:
    """L clipping steps around the centre, from ``previous`` (see :class:`CenteredClipping`)."""
    n = updates.shape[0]
    centre = np.array(previous, dtype=np.float64)
    for _ in range(iterations):
        factors = _math.clip_factors(_math.squared_distances_to(updates, centre), radius)
        # v + 1/n sum c_i (x_i - v) = (1 - sum c_i / n) v + (c/n) @ X: one pass over X.
        step = _math.mix(factors / n, updates)
        centre = (1.0 - factors.sum() / n) * centre + step
    return _math.like(centre, updates)


@aggregator("geometric_median", kind="robust-mean")
class GeometricMedian(StatelessRule):
    r"""Geometric median by the smoothed Weiszfeld iteration (RFA).

    .. math::

        \bar x = \arg\min_v \sum_{i=1}^{n} \lVert v - x_i \rVert, \qquad
        v \leftarrow \frac{\sum_i b_i x_i}{\sum_i b_i}, \quad
        b_i = \frac{1}{\max(\nu, \lVert v - x_i \rVert)}

    from the mean, until :math:`|g(v_{old}) - g(v)| \le \mathrm{tol}\, g(v)`, with
    :math:`g(v) = \sum_i \lVert v - x_i \rVert`, or T steps.

    Parameters
    ----------
    smoothing : float, > 0, default 1e-6
        nu in Pillutla et al. 2022: distances below nu count as nu.
    max_iterations : int, >= 1, default 100
        T: Weiszfeld steps at most.
    tolerance : float, >= 0, default 1e-6
        Stop when the objective improves by less than ``tolerance`` times itself.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    Equal weights :math:`\alpha_i = 1/n` (counts are self-reported, so ignored). Bound: none
    (n >= 1); breakdown point 1/2. When the median is a data point, where Weiszfeld converges
    only sublinearly, that point is returned exactly: the data point nearest the last iterate
    is checked with Vardi & Zhang's (2000) optimality test.

    References
    ----------
    .. [1] Pillutla, Kakade, Harchaoui 2022, "Robust Aggregation for Federated Learning",
       IEEE Transactions on Signal Processing.
    .. [2] Vardi, Zhang 2000, "The multivariate L1-median and associated data depth", PNAS.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("geometric_median")
    >>> rule(np.array([[0.0], [1.0], [10.0]]), np.ones(3, dtype=np.int64))  # 1-D: the median
    array([1.])
    """

    smoothing: float = Field(default=1e-6, gt=0, allow_inf_nan=False)
    max_iterations: int = Field(default=100, ge=1)
    tolerance: float = Field(default=1e-6, ge=0, allow_inf_nan=False)

    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        return geometric_median(
            updates,
            smoothing=self.smoothing,
            max_iterations=self.max_iterations,
            tolerance=self.tolerance,
        )


class Centre(NamedTuple):
    """Centred clipping's state: the last aggregate, float64 and read-only."""

    centre: _math.F64


@aggregator("centered_clipping", kind="robust-mean")
class CenteredClipping(RuleStage[Centre]):
    r"""Centred clipping: L clipped steps from last round's aggregate.

    .. math::

        v_0 = \bar x^{(t-1)}, \qquad
        v_{l+1} = v_l + \frac{1}{n} \sum_{i=1}^{n} (x_i - v_l)
        \min\!\left(1, \frac{\tau}{\lVert x_i - v_l \rVert}\right), \qquad
        \bar x^{(t)} = v_L

    Parameters
    ----------
    radius : float, > 0, required
        tau in Karimireddy et al. 2021: the clipping radius around the current centre.
    iterations : int, >= 1, default 1
        L: clipping steps per round (the paper uses 1).

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates; the next state is :class:`Centre` holding
        it in float64 (zeros at init).

    Notes
    -----
    The server-side rule; the state is the previous aggregate, i.e. the momentum when clients
    send momentum. Bound: none (n >= 1); the guarantee assumes a small Byzantine fraction
    f/n. Example counts are ignored.

    References
    ----------
    .. [1] Karimireddy, He, Jaggi 2021, "Learning from History for Byzantine Robust
       Optimization", ICML.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("centered_clipping", radius=1.0)
    >>> state = rule.init(2)
    >>> x, ones = np.array([[3.0, 4.0]]), np.ones(1, dtype=np.int64)
    >>> first, state = rule.update(x, ones, state, rng=np.random.default_rng(0))
    >>> first  # (3, 4) clipped to radius 1 around 0
    array([0.6, 0.8])
    >>> rule.update(x, ones, state, rng=np.random.default_rng(0))[0]  # around (0.6, 0.8)
    array([1.2, 1.6])
    """

    radius: float = Field(gt=0, allow_inf_nan=False)
    iterations: int = Field(default=1, ge=1)

    def init(self, num_params: int) -> Centre:
        return Centre(frozen(np.zeros(num_params, dtype=np.float64)))

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: Centre,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, Centre]:
        d = updates.shape[1]
        if not isinstance(state, Centre) or state.centre.shape != (d,):
            raise AggregationError(
                f"centered_clipping: state must be the Centre of a ({d},) array from init/update"
            )
        out = centered_clipping(
            updates, state.centre, radius=self.radius, iterations=self.iterations
        )
        return out, Centre(frozen(out.astype(np.float64)))

"""FLDetector (Zhang, Cao, Jia, Gong 2022): predict each client's update from its previous one
with an L-BFGS Hessian-vector product, score how far it strays, and drop the clients whose
mean score over a window clusters high, once the gap statistic says there are two groups."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, ClientIds, Counts, IdentifiedRule, Updates, frozen
from strategies.gap_statistic import number_of_clusters, two_means_upper
from strategies.registries import aggregator


class DetectorState(NamedTuple):
    """What FLDetector carries between rounds, all float64 but the ids and the round count.

    ``ids`` the pseudonymous clients seen (sorted), ``last`` each one's latest update,
    ``distances`` each one's latest ``window`` normalised distances (oldest first, NaN where
    it has fewer); ``steps`` and ``changes`` the last ``window`` L-BFGS pairs (global model
    difference, aggregate difference); ``aggregate`` the latest aggregate, ``rounds`` how many
    rounds it has seen."""

    ids: NDArray[np.int64]
    last: _math.F64
    distances: _math.F64
    steps: _math.F64
    changes: _math.F64
    aggregate: _math.F64
    rounds: int


def lbfgs_hvp(steps: _math.F64, changes: _math.F64, vector: _math.F64) -> _math.F64:
    r"""``B v`` for the L-BFGS approximation B of the Hessian from the pairs ``(s_k, y_k)``
    (rows of ``steps`` and ``changes``, oldest first), in the compact form of Byrd, Nocedal
    and Schnabel (1994) that FLDetector's Algorithm 2 uses:

    .. math::

        B v = \sigma v - [\sigma S\ \ Y]
        \begin{bmatrix} \sigma S^\top S & L \\ L^\top & -D \end{bmatrix}^{-1}
        \begin{bmatrix} \sigma S^\top v \\ Y^\top v \end{bmatrix}, \quad
        \sigma = \frac{y_m^\top s_m}{s_m^\top s_m}

    with L the strictly lower triangle and D the diagonal of :math:`S^\top Y`. The middle
    matrix is inverted with the pseudo-inverse (the inverse when it is regular).

    >>> lbfgs_hvp(np.array([[1.0, 0.0]]), np.array([[3.0, 0.0]]), np.array([2.0, 1.0]))
    array([6., 3.])
    """
    s, y = steps.T, changes.T  # (d, m)
    sigma = float(changes[-1] @ steps[-1]) / float(steps[-1] @ steps[-1])
    s_y = s.T @ y
    lower = np.tril(s_y, -1)
    middle = np.block([[sigma * (s.T @ s), lower], [lower.T, -np.diag(np.diag(s_y))]])
    right = np.concatenate([sigma * (s.T @ vector), y.T @ vector])
    product: _math.F64 = sigma * vector - np.hstack([sigma * s, y]) @ (
        np.linalg.pinv(middle) @ right
    )
    return product


def _distances(
    updates: Updates, previous: _math.F64, known: NDArray[np.bool_], state: DetectorState
) -> _math.F64:
    """This round's distances ``||g_i^pred - g_i|| / sum_j ||g_j^pred - g_j||`` with
    ``g_i^pred = g_i^prev + B (w_t - w_{t-1})``; NaN for a client with no previous update,
    and for all before the first L-BFGS pair."""
    out = np.full(len(updates), np.nan)
    if len(state.steps) == 0 or not known.any():
        return out
    predicted = previous[known] + lbfgs_hvp(state.steps, state.changes, state.aggregate)
    gaps = np.sqrt(_math.squared_norms(updates[known].astype(np.float64) - predicted))
    total = gaps.sum()
    out[known] = gaps / total if total > 0 else 0.0
    return out


def _admitted(
    scores: _math.F64, rng: np.random.Generator, num_references: int, max_clusters: int
) -> NDArray[np.bool_]:
    """Every client, unless the gap statistic finds more than one cluster of scores: then the
    lower cluster of the 2-means split."""
    clusters = number_of_clusters(
        scores, rng=rng, num_references=num_references, max_clusters=max_clusters
    )
    if clusters < 2:
        return np.ones(len(scores), dtype=np.bool_)
    return ~two_means_upper(scores)


def fldetector(
    updates: Updates,
    client_ids: ClientIds,
    state: DetectorState,
    *,
    rng: np.random.Generator,
    window: int,
    num_references: int,
    max_clusters: int,
) -> tuple[Aggregate, DetectorState]:
    """The mean of the updates FLDetector admits and the next state (see :class:`FLDetector`)."""
    ids = np.union1d(state.ids, client_ids)
    rows, old = np.searchsorted(ids, client_ids), np.searchsorted(ids, state.ids)
    last = np.zeros((len(ids), updates.shape[1]))
    last[old] = state.last
    table = np.full((len(ids), window), np.nan)
    table[old] = state.distances
    distances = _distances(updates, last[rows], np.isin(client_ids, state.ids), state)
    table[rows] = np.hstack([table[rows, 1:], distances[:, None]])
    last[rows] = updates
    history = table[rows]
    admitted = np.ones(len(client_ids), dtype=np.bool_)
    if not np.isnan(history).any():
        admitted = _admitted(history.mean(axis=1), rng, num_references, max_clusters)
    aggregate = _math.mix(admitted / admitted.sum(), updates)
    steps, changes = state.steps, state.changes
    if state.rounds > 0 and np.any(state.aggregate != 0):
        # The secant pair (authors' code): the global model last moved by the last aggregate,
        # and the aggregated update at the new model is this one.
        steps = np.vstack([steps, state.aggregate])[-window:]
        changes = np.vstack([changes, aggregate.astype(np.float64) - state.aggregate])[-window:]
    next_state = DetectorState(
        ids=frozen(ids),
        last=frozen(last),
        distances=frozen(table),
        steps=frozen(steps),
        changes=frozen(changes),
        aggregate=frozen(aggregate.astype(np.float64)),
        rounds=state.rounds + 1,
    )
    return aggregate, next_state


@aggregator("fldetector", kind="filtering", needs="pseudonymous client ids")
class FLDetector(IdentifiedRule[DetectorState]):
    r"""FLDetector: predict each client's update from its previous one with the L-BFGS
    Hessian-vector product, score the prediction error over a window of rounds, and, when the
    gap statistic finds more than one cluster of scores, drop the high cluster of the 2-means
    split; the unweighted mean of the rest.

    .. math::

        \hat g_i^t = g_i^{t-1} + \hat H^t (w_t - w_{t-1}), \quad
        d_i^t = \frac{\lVert \hat g_i^t - g_i^t \rVert}{\sum_j \lVert \hat g_j^t - g_j^t \rVert},
        \quad s_i^t = \frac1N \sum_{r=0}^{N-1} d_i^{t-r}, \quad
        \bar x = \frac{1}{|C|} \sum_{i \in C} g_i^t

    with :math:`\hat H^t v` the compact L-BFGS product (:func:`lbfgs_hvp`) over the last N
    pairs :math:`(w_\tau - w_{\tau-1},\ \bar g^\tau - \bar g^{\tau-1})`, and C every client,
    or the lower 2-means cluster of the scores :math:`s^t` when the gap statistic
    (:func:`strategies.gap_statistic.number_of_clusters`) gives more than one cluster.

    Parameters
    ----------
    window : int, >= 1, default 10
        N: the L-BFGS pairs kept and the rounds of distances averaged into a score (the
        paper's and the authors' 10).
    num_references : int, >= 1, default 10
        B: uniform reference sets of the gap statistic (the authors' 10; FLPoison 20).
    max_clusters : int, >= 2, default 7
        The largest k the gap statistic tries (the authors' 7; FLPoison 10).

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    The updates stand in for the gradients and the rule's own previous aggregate for
    :math:`w_t - w_{t-1}` (exact with no server optimiser): both are the same linear map of the
    gradients, so the prediction is unchanged. The first pair exists after round 2, so
    distances start in round 3 and detection in round N + 2, once every client of the round
    has N distances (with client sampling, once each sampled client has been scored N
    times). Per client the state keeps its latest update and N distances (keyed by the
    pseudonymous ids): memory ``8 (d + N)`` bytes per client seen, plus ``16 N d`` for the
    pairs. Where it differs from the paper, the authors' and FLPoison's code
    (``docs/aggregators.md``): detected clients are left out of this round's mean, not
    removed for good with training restarted (FLPoison does the same); no warm-up before
    scoring (the authors start at round 50 of 500); 1-D k-means solved exactly, not by
    Lloyd's from random starts; the middle L-BFGS matrix pseudo-inverted; the gap criterion as
    in the authors' code (FLPoison reports one cluster more). Bound: none on n; the
    attackers must be inconsistent across rounds and fewer than the honest clients.

    References
    ----------
    .. [1] Zhang, Cao, Jia, Gong 2022, "FLDetector: Defending Federated Learning Against Model
       Poisoning Attacks via Detecting Malicious Clients", KDD.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("fldetector", window=1)
    >>> state, rng, ids = rule.init(1), np.random.default_rng(0), np.arange(4)
    >>> for attacker in (5.0, -1.0, 5.0):  # three clients send 1, the fourth flips about
    ...     x = np.array([[1.0], [1.0], [1.0], [attacker]])
    ...     out, state = rule.update(x, np.ones(4, dtype=np.int64), state, rng=rng, client_ids=ids)
    >>> out  # round 3: the attacker strays from its prediction and is dropped
    array([1.])
    """

    uses_rng = True
    bound = "none; the attackers must be fewer than the honest clients"
    window: int = Field(default=10, ge=1)
    num_references: int = Field(default=10, ge=1)
    max_clusters: int = Field(default=7, ge=2)

    def init(self, num_params: int) -> DetectorState:
        empty = np.zeros((0, num_params))
        return DetectorState(
            frozen(np.zeros(0, dtype=np.int64)),
            frozen(empty.copy()),
            frozen(np.zeros((0, self.window))),
            frozen(empty.copy()),
            frozen(empty.copy()),
            frozen(np.zeros(num_params)),
            0,
        )

    def update_identified(
        self,
        updates: Updates,
        num_examples: Counts,
        state: DetectorState,
        *,
        client_ids: ClientIds,
        rng: np.random.Generator,
    ) -> tuple[Aggregate, DetectorState]:
        return fldetector(
            updates,
            client_ids,
            state,
            rng=rng,
            window=self.window,
            num_references=self.num_references,
            max_clusters=self.max_clusters,
        )

"""FLARE (Wang, Xiao, Chen, Hu, Lou, Hou, AsiaCCS 2022): MMD between the local models'
penultimate-layer representations of a server-held auxiliary set; each client votes for its
nearest neighbours, and the vote counts, through a softmax, weigh the updates."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from common.errors import AggregationError
from common.registry import ClassLabel
from strategies import _math
from strategies.base import Aggregate, Counts, Updates
from strategies.layout import InspectingRule, Inspection
from strategies.registries import aggregator


def _kernel_sum(a: _math.F64, b: _math.F64, gamma: float) -> float:
    """``sum_{x in a, y in b} exp(-gamma ||x - y||^2)``."""
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return float(np.exp(-gamma * np.maximum(squared, 0.0)).sum())


def mmd_matrix(features: _math.F64, gamma: float) -> _math.F64:
    """``(n, n)`` unbiased squared MMD (Gretton et al. 2012, ``MMD^2_u``) with the RBF kernel
    ``exp(-gamma ||x - y||^2)`` between the clients' ``(n, m, p)`` representation sets,
    negatives set to 0 (as the authors). Each cross term is summed in both operand orders,
    so the matrix is exactly symmetric whatever the client order."""
    n, m = features.shape[0], features.shape[1]
    within = np.array([(_kernel_sum(f, f, gamma) - m) / (m * (m - 1)) for f in features])
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            cross = _kernel_sum(features[i], features[j], gamma)
            cross = 0.5 * (cross + _kernel_sum(features[j], features[i], gamma))
            out[i, j] = out[j, i] = max(0.0, within[i] + within[j] - 2.0 * cross / (m * m))
    return out


def neighbour_votes(distances: _math.F64, neighbours: int) -> _math.F64:
    """How often each client is among the others' ``neighbours`` nearest (itself excluded).
    Clients tied at a voter's cut-off distance share its remaining votes equally."""
    n = distances.shape[0]
    votes = np.zeros(n)
    if neighbours <= 0:
        return votes
    for i in range(n):
        others = np.delete(np.arange(n), i)
        d = distances[i, others]
        cut = np.sort(d)[neighbours - 1]
        votes[others[d < cut]] += 1.0
        tied = others[d == cut]
        votes[tied] += (neighbours - np.sum(d < cut)) / len(tied)
    return votes


def trust_scores(votes: _math.F64, tau: float) -> _math.F64:
    """``softmax(c / (tau mean(c)))`` (the authors' ``count_to_trustscore``); uniform if no
    client got a vote."""
    mean = votes.mean()
    if mean == 0.0:
        return np.full(votes.shape, 1.0 / len(votes))
    logits = votes / (tau * mean)
    weights = np.exp(logits - logits.max())
    return np.asarray(weights / weights.sum())


def flare(
    updates: Updates,
    inspection: Inspection,
    *,
    neighbour_fraction: float,
    tau: float,
    gamma: float | None,
    aux_class: int | None,
) -> Aggregate:
    """Trust-weighted sum of the updates (see :class:`FLARE`)."""
    assert inspection.features is not None  # the chain checks it for a rule that needs it
    features = np.asarray(inspection.features(updates, aux_class), dtype=np.float64)
    n, m = features.shape[0], features.shape[1]
    if m < 2:
        raise AggregationError(
            f"flare: the auxiliary set has {m} example(s) of class {aux_class}; MMD needs 2"
        )
    width = gamma if gamma is not None else 1.0 / features.shape[2]
    votes = neighbour_votes(mmd_matrix(features, width), int(neighbour_fraction * n) - 1)
    return _math.mix(trust_scores(votes, tau), updates)


@aggregator("flare", kind="trust", needs="defense.root_size >= 2")
class FLARE(InspectingRule):
    r"""FLARE: weigh each update by a softmax of how often its model's penultimate-layer
    representations are among the other models' nearest, by MMD, on the server's auxiliary set.

    .. math::

        D_{ij} = \max\left(0, \mathrm{MMD}^2_u(P_i, P_j)\right), \quad
        c_j = \#\{i \ne j : j \in N_i\}, \quad
        \alpha_j = \frac{e^{c_j / (\tau \bar c)}}{\sum_l e^{c_l / (\tau \bar c)}}, \quad
        \bar x = \sum_j \alpha_j x_j

    with :math:`P_i` the ``(m, p)`` representations (the output layer's inputs) of the local
    model ``G + x_i`` on the m auxiliary examples, the unbiased squared MMD with the kernel
    :math:`e^{-\gamma \lVert u - v \rVert^2}`, :math:`N_i` client i's
    :math:`\lfloor f n \rfloor - 1` nearest other clients by D, and :math:`\bar c` the mean
    count. A poisoned model maps clean inputs differently, so few honest clients count it as a
    neighbour and its weight falls exponentially.

    Parameters
    ----------
    neighbour_fraction : float, in (0, 1], default 0.5
        f: each client votes for its ``floor(f n) - 1`` nearest others (the authors' top 50 %,
        itself included).
    tau : float, > 0, default 1
        Temperature of the softmax over the counts relative to their mean.
    gamma : float > 0 or None, default None
        RBF kernel width; ``None`` is ``1 / p`` (scikit-learn's ``rbf`` default, which the
        authors' ``kernel_mmd`` uses).
    aux_class : int >= 0 or None, default 1
        The auxiliary examples: the server's root set (``defense.root_size``) restricted to
        this class (the authors use 200 test images of class 1); ``None`` keeps every class.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    As the authors' code (``detect.py``: ``penul_check``, ``cal_nearest_neighbor``,
    ``count_to_trustscore``; ``utils/mmd.py``; ``agg_alg.py``: ``soft_agg``). Deviations: the
    auxiliary set is the server's root set, drawn from the training split (the authors take
    test images); clients tied at a voter's cut-off share its remaining votes (the authors'
    argsort breaks ties by client index, which would make the weights depend on the client
    order); neighbours exclude the voter explicitly (the authors drop the first index of the
    sorted row, the voter unless another client is at MMD 0 too). BackFed's ``FlareServer``
    differs from the authors: kernel width 1, diagonal kept in the within terms, trust = count
    / total. Bound: none on n; the honest clients must be most of every client's neighbours.

    References
    ----------
    .. [1] Wang, Xiao, Chen, Hu, Lou, Hou 2022, "FLARE: Defending Federated Learning against Model
       Poisoning Attacks via Latent Space Representations", AsiaCCS.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> points = np.array([0.0, 0.1, 0.3, 5.0])  # client i represents both examples by points[i]
    >>> def probe(rows, aux_class):  # the server's probe: (n, m=2, p=1) representations
    ...     return np.repeat(points[rows.argmax(axis=1)][:, None, None], 2, axis=1)
    >>> inspection = strategies.Inspection(strategies.Layout(((4,),)), features=probe)
    >>> rule = strategies.get_aggregator("flare", gamma=1.0)
    >>> # one vote each: 0 -> 1, 1 -> 0, 2 -> 1, 3 -> 2: counts (1, 2, 1, 0), weights e^c
    >>> np.round(rule(np.eye(4), np.ones(4, dtype=np.int64), inspection=inspection), 4)
    array([0.1966, 0.5344, 0.1966, 0.0723])
    """

    bound = "none; the honest clients must be most of each other's nearest neighbours"
    needs_features = True
    neighbour_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    tau: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    gamma: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    aux_class: ClassLabel | None = 1

    def update_inspected(
        self, updates: Updates, num_examples: Counts, *, inspection: Inspection
    ) -> Aggregate:
        return flare(
            updates,
            inspection,
            neighbour_fraction=self.neighbour_fraction,
            tau=self.tau,
            gamma=self.gamma,
            aux_class=self.aux_class,
        )

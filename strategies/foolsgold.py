"""FoolsGold (Fung et al. 2020): weight each client by how unlike every other client its
history of updates is, so sybils pushing one shared objective get weight zero."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from strategies import _math
from strategies.base import (
    Aggregate,
    ClientIds,
    Counts,
    IdentifiedRule,
    Updates,
    frozen,
)
from strategies.registries import aggregator


class History(NamedTuple):
    """The pseudonymous ids seen so far (sorted) and each one's summed updates, float64."""

    ids: NDArray[np.int64]
    sums: NDArray[np.float64]


def pardoned_weights(similarity: _math.F64, epsilon: float) -> _math.F64:
    """FoolsGold's learning rates from the ``(n, n)`` cosine similarities of the histories
    (diagonal excluded): pardoning, ``1 - max_j``, rescaling to max 0.99, logit, clip."""
    cs = similarity - np.eye(similarity.shape[0])
    peak = cs.max(axis=1) + epsilon
    # Pardoning: an honest client that happens to resemble a sybil is excused in proportion to
    # how much less similar it is to anyone than that sybil is.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = peak[:, None] / peak[None, :]
    cs = cs * np.where(peak[:, None] < peak[None, :], ratio, 1.0)
    weights: _math.F64 = np.clip(1.0 - cs.max(axis=1), 0.0, 1.0)
    top = weights.max()
    if top == 0.0:
        return weights
    weights = weights / top
    weights[weights == 1.0] = 0.99  # every weight is now < 1: the logit is finite
    logit: _math.F64 = np.clip(np.log(weights / (1.0 - weights) + epsilon) + 0.5, 0.0, 1.0)
    return logit


def foolsgold(
    updates: Updates, client_ids: ClientIds, history: History, *, epsilon: float
) -> tuple[Aggregate, History]:
    """The FoolsGold-weighted mean of this round's updates and the next history (see
    :class:`FoolsGold`)."""
    ids = np.union1d(history.ids, client_ids)
    sums = np.zeros((len(ids), updates.shape[1]))
    sums[np.searchsorted(ids, history.ids)] = history.sums
    rows = np.searchsorted(ids, client_ids)
    sums[rows] += updates  # ids are distinct within a round (checked by the chain)
    current = sums[rows]
    norms = np.sqrt(_math.squared_norms(current))
    inner = current @ current.T
    scale = np.outer(norms, norms)
    similarity = np.divide(inner, scale, out=np.zeros_like(inner), where=scale > 0)
    # Exact copies have cosine 1 up to rounding; left at 1 - 1e-16, the rescaling by the largest
    # weight would blow that rounding up into weights that decide which copy counts.
    similarity[similarity > 1.0 - 1e-12] = 1.0
    weights = pardoned_weights(similarity, epsilon)
    total = weights.sum()
    aggregate = (
        _math.mix(weights / total, updates)
        if total > 0
        else np.zeros(updates.shape[1], dtype=updates.dtype)
    )
    return aggregate, History(frozen(ids), frozen(sums))


@aggregator("foolsgold", kind="trust", needs="pseudonymous client ids")
class FoolsGold(IdentifiedRule[History]):
    r"""FoolsGold: learning rates from the pairwise cosine similarity of the clients' summed
    update histories, with pardoning and a logit.

    .. math::

        H_i = \sum_{\tau \le t} x_{i,\tau}, \quad
        cs_{ij} = \cos(H_i, H_j)\ (i \ne j), \quad v_i = \max_j cs_{ij} + \epsilon, \\
        cs_{ij} \leftarrow cs_{ij} \frac{v_i}{v_j} \text{ if } v_i < v_j, \quad
        \alpha_i = 1 - \max_j cs_{ij} \text{ clipped to } [0, 1], \quad
        \alpha_i \leftarrow \alpha_i / \max_k \alpha_k \ (1 \to 0.99), \\
        \alpha_i \leftarrow \operatorname{clip}_{[0, 1]}\!\left(\ln\!\left(
        \frac{\alpha_i}{1 - \alpha_i} + \epsilon\right) + \frac12\right), \quad
        \bar x = \frac{\sum_i \alpha_i x_{i,t}}{\sum_i \alpha_i}

    Parameters
    ----------
    epsilon : float, > 0, default 1e-6
        Added to each maximum similarity and inside the logarithm (FLPoison's default).

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates; zero if every weight is 0.

    Notes
    -----
    The state keeps every client's summed updates, keyed by the pseudonymous stable id the
    server passes (``client_ids``; see ``docs/aggregators.md`` for what the ids reveal): memory
    ``8 d`` bytes per client seen. Where it differs from the paper and the authors' and
    FLPoison's code: the aggregate is the weighted *mean* (the paper's
    :math:`\sum_i \alpha_i x_i` is n times FedAvg's step on an honest round, made for FedSGD
    with a client learning rate); similarities use all coordinates (the authors' default; the
    output-layer "indicative features" option needs the model's layout, which an aggregator
    does not see); histories sum the raw updates (FLPoison first scales each update to norm
    at most 1); cosines within 1e-12 of 1 count as 1. Identical histories are sybils to
    FoolsGold: n identical updates aggregate to zero (the global model is kept). Bound: none on
    n; the sybils must collude on one objective, and honest histories must differ.

    References
    ----------
    .. [1] Fung, Yoon, Beschastnikh 2020, "The Limitations of Federated Learning in Sybil
       Settings", RAID.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("foolsgold")
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # two sybils send the same update
    >>> rule(x, np.ones(3, dtype=np.int64))  # the sybils get weight 0
    array([1., 0.])
    """

    bound = "none; the sybils must collude on one objective"
    epsilon: float = Field(default=1e-6, gt=0, allow_inf_nan=False)

    def init(self, num_params: int) -> History:
        return History(
            frozen(np.zeros(0, dtype=np.int64)), frozen(np.zeros((0, num_params), np.float64))
        )

    def update_identified(
        self,
        updates: Updates,
        num_examples: Counts,
        state: History,
        *,
        client_ids: ClientIds,
        rng: np.random.Generator,
    ) -> tuple[Aggregate, History]:
        return foolsgold(updates, client_ids, state, epsilon=self.epsilon)

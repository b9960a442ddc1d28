"""FLAME (Nguyen et al. 2022): HDBSCAN on cosine distances admits the majority cluster, whose
updates are clipped to the median norm, averaged and noised with adaptive Gaussian noise."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, EmptyState, MemorylessRule, Updates
from strategies.registries import aggregator

Mask = NDArray[np.bool_]


def cosine_distances(updates: Updates) -> _math.F64:
    """``1 - cos(x_i, x_j)`` in float64, ``(n, n)``; a zero row is at distance 1 (orthogonal)
    from every other row and 0 from itself."""
    squared = _math.squared_norms(updates)
    # <x_i, x_j> from the float64 norms and distances (polarisation), no (n, d) float64 copy.
    inner = 0.5 * (squared[:, None] + squared[None, :] - _math.pairwise_squared_distances(updates))
    norms = np.sqrt(squared)
    scale = np.outer(norms, norms)
    cosine = np.divide(inner, scale, out=np.zeros_like(inner), where=scale > 0)
    distances = np.clip(1.0 - cosine, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    return distances


def majority_cluster(distances: _math.F64) -> Mask:
    """The members of the HDBSCAN cluster of at least ``n // 2 + 1`` points (FLAME's setting:
    ``min_samples=1``, ``allow_single_cluster``); with that size there is at most one. Every
    point is kept when n = 1 (HDBSCAN needs two)."""
    n = distances.shape[0]
    if n < 2:
        return np.ones(n, dtype=np.bool_)
    from sklearn.cluster import HDBSCAN  # imported on first use: sklearn takes ~1 s to load

    clustering: Any = HDBSCAN(
        metric="precomputed",
        min_cluster_size=max(2, n // 2 + 1),
        min_samples=1,
        allow_single_cluster=True,
        copy=True,
    )
    labels: NDArray[np.int64] = clustering.fit(distances).labels_
    return np.asarray(labels == 0)


def flame(updates: Updates, *, rng: np.random.Generator, noise_level: float) -> Aggregate:
    """Noised mean of the majority cluster's updates clipped to the median norm (see
    :class:`FLAME`)."""
    admitted = majority_cluster(cosine_distances(updates))
    squared = _math.squared_norms(updates)
    median = float(np.median(np.sqrt(squared)))
    d = updates.shape[1]
    weights = np.where(admitted, _math.clip_factors(squared, median), 0.0)
    mean = (
        _math.mix(weights / admitted.sum(), updates)
        if admitted.any()
        else np.zeros(d, dtype=updates.dtype)
    )
    if noise_level == 0.0:
        return mean
    noise = rng.normal(0.0, noise_level * median, size=d)
    return _math.like(mean.astype(np.float64) + noise, updates)


@aggregator("flame", kind="filtering")
class FLAME(MemorylessRule):
    r"""FLAME: keep the majority HDBSCAN cluster of cosine distances, clip the kept updates to
    the median norm, average them and add Gaussian noise scaled to that norm.

    .. math::

        S_t = \operatorname{median}_{i \le n} \lVert x_i \rVert, \quad
        \bar x = \frac{1}{|C|} \sum_{i \in C} x_i \min\!\left(1,
        \frac{S_t}{\lVert x_i \rVert}\right) + \mathcal N\!\left(0, (\lambda S_t)^2 I\right)

    with :math:`C` the cluster HDBSCAN finds on the distances
    :math:`1 - \cos(x_i, x_j)` with ``min_cluster_size = n // 2 + 1``, ``min_samples = 1`` and
    a single cluster allowed: at most one cluster that size exists, so it is the majority.

    Parameters
    ----------
    noise_level : float, >= 0, default 0.001
        lambda: the noise standard deviation per coordinate is :math:`\lambda S_t`
        (the paper's 0.001 for image classification).

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates; the noise alone if C is empty.

    Notes
    -----
    The median norm is over all n updates (the paper's Algorithm 1, line 9; the authors' and
    FLPoison's code do the same). Where it differs from the authors' code and FLPoison
    (``docs/aggregators.md`` has the table): the noise is added to the aggregated update with
    standard deviation :math:`\lambda S_t`, as the paper states, not
    :math:`\lambda S_t \operatorname{std}(W)` per layer of the model as FLPoison does, and to
    every parameter; scikit-learn's HDBSCAN on the precomputed float64 distances instead of
    the ``hdbscan`` package with ``metric="cosine"``; n = 1 keeps its one update. Example
    counts are ignored (the mean is unweighted, as in the paper). Bound: none on n; the
    majority cluster must be honest.

    References
    ----------
    .. [1] Nguyen, Rieger, Chen, Yalame, Möllering, Fereidooni, Marchal, Miettinen, Mirhoseini,
       Zeitouni, Koushanfar, Sadeghi, Schneider 2022, "FLAME: Taming Backdoors in Federated
       Learning", USENIX Security.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("flame", noise_level=0.0)
    >>> x = np.array([[1.0, 0.0], [2.0, 0.0], [6.0, 0.5], [0.0, 5.0], [-4.0, 0.0]])
    >>> # C = the first three (near-parallel); S_t = 4, so (6, 0.5) is clipped to norm 4
    >>> np.round(rule(x, np.ones(5, dtype=np.int64)), 4)
    array([2.3287, 0.1107])
    """

    uses_rng = True
    bound = "none; the majority cosine cluster must be honest"
    noise_level: float = Field(default=0.001, ge=0, allow_inf_nan=False)

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: EmptyState,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, EmptyState]:
        return flame(updates, rng=rng, noise_level=self.noise_level), state

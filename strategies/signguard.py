"""SignGuard (Xu et al. 2022): filter the updates by norm and by sign statistics, then average
the survivors clipped to the median norm."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, ValidationInfo, field_validator

from strategies import _math
from strategies.base import Aggregate, Counts, EmptyState, MemorylessRule, Updates
from strategies.registries import aggregator

Mask = NDArray[np.bool_]


def signguard(
    updates: Updates,
    *,
    rng: np.random.Generator,
    lower_bound: float,
    upper_bound: float,
    selection_fraction: float,
) -> Aggregate:
    """Mean of the updates in the norm band and the largest sign cluster, clipped to the
    median norm (see :class:`SignGuard`)."""
    d = updates.shape[1]
    squared = _math.squared_norms(updates)
    norms = np.sqrt(squared)
    median = float(np.median(norms))
    in_band = (norms > lower_bound * median) & (norms < upper_bound * median)
    count = min(d, max(1, math.floor(selection_fraction * d)))
    sampled = _math.sample_columns(updates, count, rng)
    fractions = np.stack(
        [
            np.count_nonzero(sampled > 0, axis=1),
            np.count_nonzero(sampled == 0, axis=1),
            np.count_nonzero(sampled < 0, axis=1),
        ],
        axis=1,
    ) / float(count)
    peak = fractions.max(axis=0)
    features = np.divide(fractions, peak, out=np.zeros_like(fractions), where=peak > 0)
    selected = in_band & largest_sign_cluster(features)
    if not selected.any():
        return np.zeros(d, dtype=updates.dtype)
    weights = np.where(selected, _math.clip_factors(squared, median), 0.0) / selected.sum()
    return _math.mix(weights, updates)


def mean_shift_bandwidth(features: _math.F64) -> float:
    """``sklearn.cluster.estimate_bandwidth(features, quantile=0.5)`` on all n rows: the mean
    over rows of the distance to the ``max(1, floor(n/2))``-th nearest row, the row itself
    counted first (so 0 for n <= 3)."""
    distances = np.sqrt(((features[:, None, :] - features[None, :, :]) ** 2).sum(axis=-1))
    k = max(1, features.shape[0] // 2)
    return float(np.sort(distances, axis=1)[:, k - 1].mean())


def largest_sign_cluster(features: _math.F64) -> Mask:
    """Members of the largest MeanShift cluster of the ``(n, 3)`` sign statistics (see
    :class:`SignGuard`); ties go to the cluster MeanShift lists first (more points within the
    bandwidth of its mode, then the lexicographically larger mode)."""
    bandwidth = mean_shift_bandwidth(features)
    if bandwidth == 0.0:
        # The flat kernel of radius 0 holds only exact copies: each distinct statistic is its
        # own mode. np.unique lists them in increasing lexicographic order, so the last of the
        # most frequent is the one MeanShift would list first.
        _, group, sizes = np.unique(features, axis=0, return_inverse=True, return_counts=True)
        best = len(sizes) - 1 - int(np.argmax(sizes[::-1]))
        return np.asarray(group.reshape(-1) == best)
    from sklearn.cluster import MeanShift  # imported on first use: sklearn takes ~1 s to load

    # sklearn's bin seeding (one seed per occupied grid cell of side the bandwidth, or the
    # points themselves when no two share a cell), kept in float64.
    cells = np.unique(np.round(features / bandwidth), axis=0)
    seeds = features if len(cells) == len(features) else cells * bandwidth
    clustering: Any = MeanShift(bandwidth=bandwidth, seeds=seeds, cluster_all=False)
    labels: NDArray[np.int64] = clustering.fit(features).labels_
    # Label -1 (no cluster) is not counted; if every point has it, minlength=1 makes the
    # "largest cluster" label 0, which no point carries, so the mask is empty.
    sizes = np.bincount(labels[labels >= 0], minlength=1)
    return np.asarray(labels == int(np.argmax(sizes)))


@aggregator("signguard", kind="filtering")
class SignGuard(MemorylessRule):
    r"""SignGuard: keep the updates inside a norm band around the median norm and in the
    largest cluster of sign statistics; average them clipped to the median norm.

    .. math::

        M = \operatorname{median}_i \lVert x_i \rVert, \quad
        S_1 = \{i : L M < \lVert x_i \rVert < R M\}, \quad
        \bar x = \frac{1}{|S|} \sum_{i \in S} x_i \min\!\left(1,
        \frac{M}{\lVert x_i \rVert}\right), \quad S = S_1 \cap S_2

    with :math:`S_2` the largest MeanShift cluster of the sign statistics: on a random subset
    of :math:`k = \max(1, \lfloor q d \rfloor)` coordinates (``rng``), each update's fractions
    of positive, zero and negative coordinates, each divided by its maximum over the clients.

    Parameters
    ----------
    lower_bound : float, >= 0, default 0.1
        L: keep updates with :math:`\lVert x_i \rVert > L M`.
    upper_bound : float, > lower_bound, default 3.0
        R: keep updates with :math:`\lVert x_i \rVert < R M`.
    selection_fraction : float, in (0, 1], default 0.1
        q: the fraction of the d coordinates whose signs are counted.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates; zero (the global model is kept) if S is
        empty.

    Notes
    -----
    Plain SignGuard (no similarity feature) with the authors' code's settings: flat-kernel
    MeanShift with bin seeding, ``cluster_all=False``, and the bandwidth of
    ``sklearn.cluster.estimate_bandwidth(quantile=0.5)``. Bound: none on n; the largest sign
    cluster must be honest (an honest majority). Where it differs from the authors' code
    (``docs/aggregators.md`` has the table): a uniform random subset of coordinates instead
    of a window at a random offset; the bandwidth from all n clients (a random 50 would depend
    on the client order); float64 bin seeds (sklearn's float32 rounding leaves every seed
    empty below ~6e-8); a zero bandwidth groups exactly equal statistics; a statistic whose
    maximum is 0 stays 0; numpy's median M for both filter and clip; an empty S gives zero,
    not NaN. With ``M = 0`` nothing passes the norm filter. Example counts are ignored.

    References
    ----------
    .. [1] Xu, Huang, Song, Lan 2022, "SignGuard: Byzantine-robust Federated Learning through
       Collaborative Malicious Gradient Filtering", ICDCS (arXiv 2109.05872).

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("signguard", selection_fraction=1.0)
    >>> x = np.array([[1.0, 1.0], [1.5, 1.5], [2.0, 2.0], [-1.5, -1.5], [40.0, 40.0]])
    >>> # M = ||(1.5, 1.5)||: (40, 40) is out of the band, (-1.5, -1.5) out of the largest
    >>> # sign cluster, and (2, 2) is clipped to norm M, i.e. to (1.5, 1.5)
    >>> rule(x, np.ones(5, dtype=np.int64))
    array([1.33333333, 1.33333333])
    """

    uses_rng = True
    bound = "none; the largest sign cluster must be honest (honest majority)"
    lower_bound: float = Field(default=0.1, ge=0, allow_inf_nan=False)
    upper_bound: float = Field(default=3.0, gt=0, allow_inf_nan=False)
    selection_fraction: float = Field(default=0.1, gt=0, le=1, allow_inf_nan=False)

    @field_validator("upper_bound")
    @classmethod
    def _above_lower(cls, value: float, info: ValidationInfo) -> float:
        lower = info.data.get("lower_bound")
        if lower is not None and value <= lower:
            raise ValueError(f"upper_bound must exceed lower_bound ({lower})")
        return value

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: EmptyState,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, EmptyState]:
        aggregate = signguard(
            updates,
            rng=rng,
            lower_bound=self.lower_bound,
            upper_bound=self.upper_bound,
            selection_fraction=self.selection_fraction,
        )
        return aggregate, state

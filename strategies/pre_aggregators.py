"""Pre-aggregators: map (updates, counts) to new (updates, counts) in front of a rule."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from strategies import _math
from strategies.base import Counts, EmptyState, MemorylessPre, StatelessPre, Updates
from strategies.params import Byzantine
from strategies.registries import pre_aggregator


def clip(updates: Updates, *, max_norm: float) -> Updates:
    """Every row scaled onto the L2 ball of radius M (see :class:`Clip`)."""
    factors = _math.clip_factors(_math.squared_norms(updates), max_norm)
    return _math.scale_rows(updates, factors)


def nnm(updates: Updates, *, num_byzantine: int) -> Updates:
    """Every row replaced by the mean of its n - f nearest rows (see :class:`NNM`)."""
    n = updates.shape[0]
    keep = n - num_byzantine
    distances = _math.pairwise_squared_distances(updates)
    # Stable argsort so a row's own index wins its zero-distance tie with duplicates.
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :keep]
    mixing = np.zeros((n, n))
    np.put_along_axis(mixing, nearest, 1.0 / keep, axis=1)
    return _math.mix(mixing, updates)


def bucketing(
    updates: Updates, num_examples: Counts, *, bucket_size: int, rng: np.random.Generator
) -> tuple[Updates, Counts]:
    """Bucket means of the rows permuted with ``rng``, summed counts (see :class:`Bucketing`)."""
    n = updates.shape[0]
    order = rng.permutation(n)
    buckets = np.arange(n) // bucket_size  # bucket of each position in the permuted order
    num_buckets = int(buckets[-1]) + 1
    # Bucket k holds rows order[k s : (k+1) s]; order[j::s] is the j-th member of every bucket
    # (the last bucket may lack the later ones). Gather the first members, add the others in
    # place, divide by the sizes: one pass over X and no (n, d) copy or dense (n/s, n) mixing
    # product. Float32 sums of s rows, then one division: within (s+1) eps_32 sum |x|.
    means = updates[order[::bucket_size]]
    for j in range(1, bucket_size):
        for k, row in enumerate(order[j::bucket_size]):
            means[k] += updates[row]
    sizes = np.bincount(buckets, minlength=num_buckets)
    means /= sizes.astype(updates.dtype)[:, None]
    counts = np.bincount(buckets, weights=num_examples[order], minlength=num_buckets)
    return means, counts.astype(np.int64)


@pre_aggregator("clip")
class Clip(StatelessPre):
    r"""Static norm clipping: every update scaled onto the L2 ball of radius M; counts kept.

    .. math::

        x_i \leftarrow x_i \min\!\left(1, \frac{M}{\lVert x_i \rVert_2}\right)

    Parameters
    ----------
    max_norm : float, > 0, required
        M: the clipping radius.

    Returns
    -------
    tuple of ndarray
        The ``(n, n_params)`` clipped updates (their dtype) and a copy of the counts.

    Notes
    -----
    Bound: none (n >= 1).

    References
    ----------
    .. [1] Sun, Kairouz, Suresh, McMahan 2019, "Can You Really Backdoor Federated Learning?",
       arXiv 1911.07963.
    .. [2] McMahan, Ramage, Talwar, Zhang 2018, "Learning Differentially Private Recurrent
       Language Models", ICLR (DP-FedAvg).

    Examples
    --------
    >>> import numpy as np, strategies
    >>> stage = strategies.get_pre_aggregator("clip", {"max_norm": 1.0})
    >>> x, n, _ = stage.update(np.array([[3.0, 4.0], [0.0, 0.5]]), np.array([2, 3]),
    ...                        stage.init(2), rng=np.random.default_rng(0))
    >>> x
    array([[0.6, 0.8],
           [0. , 0.5]])
    """

    max_norm: float = Field(gt=0, allow_inf_nan=False)

    def transform(self, updates: Updates, num_examples: Counts) -> tuple[Updates, Counts]:
        return clip(updates, max_norm=self.max_norm), num_examples.copy()


@pre_aggregator("nnm")
class NNM(StatelessPre, Byzantine):
    r"""Nearest-neighbour mixing: every update replaced by the mean of its n - f nearest
    updates (itself included); counts kept.

    .. math::

        y_i = \frac{1}{n - f} \sum_{j \in N_i} x_j, \qquad
        N_i \text{ the } n - f \text{ updates nearest } x_i \ (x_i \text{ included})

    Parameters
    ----------
    num_byzantine : int, >= 0, default 0
        f in Allouah et al. 2023: the number of Byzantine updates to tolerate.

    Returns
    -------
    tuple of ndarray
        The ``(n, n_params)`` mixed updates (their dtype) and a copy of the counts.

    Notes
    -----
    Bound: n >= 2f+1 (f < n/2). Ties in distance go to the lower index.

    References
    ----------
    .. [1] Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan 2023, "Fixing by Mixing:
       A Recipe for Optimal Byzantine ML under Heterogeneity", AISTATS.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> stage = strategies.get_pre_aggregator("nnm", {"num_byzantine": 1})
    >>> x, n, _ = stage.update(np.array([[0.0], [1.0], [10.0]]), np.ones(3, dtype=np.int64),
    ...                        stage.init(1), rng=np.random.default_rng(0))
    >>> x[:, 0]  # each with its nearest other
    array([0.5, 0.5, 5.5])
    """

    bound = "n >= 2f+1"

    def min_clients(self, downstream: int = 1) -> int:
        return max(downstream, 2 * self.num_byzantine + 1)

    def transform(self, updates: Updates, num_examples: Counts) -> tuple[Updates, Counts]:
        return nnm(updates, num_byzantine=self.num_byzantine), num_examples.copy()


@pre_aggregator("bucketing")
class Bucketing(MemorylessPre):
    r"""Bucketing: permute the n updates with ``rng``, split them into ceil(n/s) buckets of s
    consecutive updates (the last may be smaller), and return the bucket means with the
    buckets' summed counts.

    .. math::

        y_k = \frac{1}{|B_k|} \sum_{i \in B_k} x_{\pi(i)}, \quad
        B_k = \{ks, \dots, \min(n, (k+1)s) - 1\}, \quad k < \lceil n/s \rceil

    with :math:`\pi` a uniform random permutation drawn from ``rng``.

    Parameters
    ----------
    bucket_size : int, >= 1, default 2
        s in Karimireddy et al. 2022: updates averaged per bucket.

    Returns
    -------
    tuple of ndarray
        The ``(ceil(n/s), n_params)`` bucket means (their dtype) and their summed counts.

    Notes
    -----
    Bound: none of its own; the next stage sees ceil(n/s) updates of which at most f are
    contaminated, so the chain needs :math:`n \ge (k-1)s + 1` for a next stage needing k.
    The only stage whose output depends on the row order (for a given ``rng``), by design.

    References
    ----------
    .. [1] Karimireddy, He, Jaggi 2022, "Byzantine-Robust Learning on Heterogeneous Datasets
       via Bucketing", ICLR.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> stage = strategies.get_pre_aggregator("bucketing", {"bucket_size": 2})
    >>> np.random.default_rng(0).permutation(5)
    array([2, 4, 3, 0, 1])
    >>> x, n, _ = stage.update(np.array([[0.0], [10.0], [20.0], [30.0], [40.0]]),
    ...                        np.array([1, 2, 3, 4, 5]), stage.init(1),
    ...                        rng=np.random.default_rng(0))
    >>> x[:, 0], n  # buckets {2, 4}, {3, 0}, {1}
    (array([30., 15., 10.]), array([8, 5, 2]))
    """

    uses_rng = True
    bound = "ceil(n/s) >= the next stage's bound"
    bucket_size: int = Field(default=2, ge=1)

    def min_clients(self, downstream: int = 1) -> int:
        # ceil(n / s) >= k  <=>  n >= (k - 1) s + 1
        return max(1, (max(downstream, 1) - 1) * self.bucket_size + 1)

    def update(
        self, updates: Updates, num_examples: Counts, state: EmptyState, *, rng: np.random.Generator
    ) -> tuple[Updates, Counts, EmptyState]:
        return *bucketing(updates, num_examples, bucket_size=self.bucket_size, rng=rng), state

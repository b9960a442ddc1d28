"""DnC (Shejwalkar & Houmansadr 2021): drop the updates that project farthest along the top
singular direction of random coordinate subsets, then average the rest."""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, EmptyState, MemorylessRule, Updates
from strategies.params import Byzantine
from strategies.registries import aggregator


def dnc(
    updates: Updates,
    *,
    rng: np.random.Generator,
    num_byzantine: int,
    num_iterations: int,
    subsample_dim: int,
    filter_fraction: float,
) -> Aggregate:
    """Unweighted mean of the updates DnC keeps in every iteration (see :class:`DnC`)."""
    n, d = updates.shape
    keep = n - math.floor(filter_fraction * num_byzantine)
    times_kept = np.zeros(n, dtype=np.int64)
    for _ in range(num_iterations if subsample_dim < d else 1):
        sampled = _math.sample_columns(updates, subsample_dim, rng)
        values, vectors = np.linalg.eigh(_math.centred_gram(sampled))
        scores = values[-1] * vectors[:, -1] ** 2  # eigh sorts eigenvalues ascending
        times_kept[np.argsort(scores, kind="stable")[:keep]] += 1
    kept = times_kept == times_kept.max()
    return _math.mix(kept / kept.sum(), updates)


@aggregator("dnc", kind="filtering")
class DnC(MemorylessRule, Byzantine):
    r"""DnC (Divide-and-Conquer): niters times, score every update by its squared projection
    on the top singular direction of a random coordinate subsample and keep the lowest; return
    the mean of the updates kept in every iteration.

    .. math::

        s_i = \langle x_i[r] - \mu, v \rangle^2, \quad
        \mu = \frac{1}{n}\sum_j x_j[r], \quad
        v = \text{top right singular vector of } (x_j[r] - \mu)_j, \qquad
        \bar x = \frac{1}{|K|} \sum_{i \in K} x_i

    with r the b sampled coordinates and K the intersection over the iterations of the
    :math:`n - \lfloor c\, m \rfloor` lowest scores.

    Parameters
    ----------
    num_byzantine : int, >= 0, default 0
        m in Shejwalkar & Houmansadr 2021.
    num_iterations : int, >= 1, default 5
        niters: rounds of subsampling and filtering.
    subsample_dim : int, >= 1, default 10000
        b: coordinates drawn without replacement from ``rng`` per iteration (all d if b >= d,
        and then one iteration, since all would see the same coordinates).
    filter_fraction : float, >= 0, default 1.0
        c: each iteration drops the :math:`\lfloor c\, m \rfloor` highest scores.

    Returns
    -------
    ndarray, shape (n_params,)
        The unweighted mean of the kept updates, in their dtype.

    Notes
    -----
    Defaults niters = 5, b = 10,000, c = 1 as in Blades. Bound: n > c m (every iteration
    keeps one update); filtering only works while the m Byzantine updates are a minority.
    The scores come from the ``n x n`` centred Gram matrix :math:`G = C C^T` instead of an SVD
    of C: with G's top eigenpair :math:`(\lambda, u)`, :math:`C v = \sqrt{\lambda} u`, so
    :math:`s_i = \lambda u_i^2` exactly, for one :math:`O(n^2 b)` product. Ties go to the
    lower index. If the intersection is empty (with b < d the iterations can drop different
    updates), the updates kept in the most iterations are averaged, which is the intersection
    whenever it is not empty; Blades, FLPoison and the SignGuard authors' copy average the
    empty set (NaN). Example counts are ignored.

    References
    ----------
    .. [1] Shejwalkar, Houmansadr 2021, "Manipulating the Byzantine: Optimizing Model
       Poisoning Attacks and Defenses for Federated Learning", NDSS, Algorithm 2.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("dnc", num_byzantine=1)
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0], [100.0]])
    >>> rule(x, np.ones(5, dtype=np.int64))  # 100 projects farthest from the mean 21.2
    array([1.5])
    """

    uses_rng = True
    bound = "n > c*m, i.e. n >= floor(c*m)+1"
    num_iterations: int = Field(default=5, ge=1)
    subsample_dim: int = Field(default=10_000, ge=1)
    filter_fraction: float = Field(default=1.0, ge=0, allow_inf_nan=False)

    def min_clients(self) -> int:
        return math.floor(self.filter_fraction * self.num_byzantine) + 1

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: EmptyState,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, EmptyState]:
        aggregate = dnc(
            updates,
            rng=rng,
            num_byzantine=self.num_byzantine,
            num_iterations=self.num_iterations,
            subsample_dim=self.subsample_dim,
            filter_fraction=self.filter_fraction,
        )
        return aggregate, state

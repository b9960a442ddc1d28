"""Norm clipping with weak differential privacy (Sun et al. 2019): the norm-bounded mean of the
updates plus a small Gaussian noise on the aggregate."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from strategies import _math
from strategies.averaging import norm_bounding
from strategies.base import Aggregate, Counts, EmptyState, MemorylessRule, Updates
from strategies.params import Weighting
from strategies.registries import aggregator


def weak_dp(
    updates: Updates,
    num_examples: Counts,
    *,
    rng: np.random.Generator,
    max_norm: float,
    noise_std: float,
    weighted: bool,
) -> Aggregate:
    """``sum_i w_i x_i min(1, M / ||x_i||) + N(0, sigma^2 I)`` (see :class:`WeakDP`)."""
    bounded = norm_bounding(updates, num_examples, max_norm=max_norm, weighted=weighted)
    if noise_std == 0.0:
        return bounded
    noise = rng.normal(0.0, noise_std, size=updates.shape[1])
    return _math.like(bounded.astype(np.float64) + noise, updates)


@aggregator("weak_dp", kind="average")
class WeakDP(MemorylessRule, Weighting):
    r"""Norm clipping with weak DP: clip every update to norm M, average, and add Gaussian
    noise of standard deviation sigma to every coordinate of the aggregate.

    .. math::

        \bar x = \sum_{i=1}^{n} w_i \, x_i \min\!\left(1, \frac{M}{\lVert x_i \rVert}\right)
        + \mathcal N(0, \sigma^2 I)

    Parameters
    ----------
    max_norm : float, > 0, default 3.0
        M: the clipping radius (FLPoison's ``norm_threshold`` default).
    noise_std : float, >= 0, default 0.002
        sigma: the standard deviation of the noise per coordinate (FLPoison's default; Sun et
        al. sweep 0.0005 to 0.05 on EMNIST).
    weighted : bool, default True
        Weight client i by :math:`n_i / \sum_j n_j`; ``False`` gives ``1/n``.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    "Weak" because sigma is chosen for utility, not for a privacy budget. With
    ``weighted=False`` it is the Gaussian mechanism of DP-FedAvg (McMahan et al. 2018) on the
    mean, with noise multiplier :math:`z = \sigma n / M` per round for add/remove-one-client
    adjacency; ``dp.mode = "central"`` with ``fedavg`` is the accounted version of the same
    mechanism. Where it differs from FLPoison (``docs/aggregators.md``): the noise is added once
    to the aggregate, as Sun et al. describe ("adding Gaussian noise to the global model"),
    not to each client's clipped update before averaging, which FLPoison does (that is noise
    of standard deviation :math:`\sigma / \sqrt n` on an unweighted mean).

    References
    ----------
    .. [1] Sun, Kairouz, Suresh, McMahan 2019, "Can You Really Backdoor Federated Learning?",
       arXiv 1911.07963.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("weak_dp", max_norm=1.0, noise_std=0.0, weighted=False)
    >>> rule(np.array([[3.0, 4.0], [0.5, 0.0]]), np.ones(2, dtype=np.int64))
    array([0.55, 0.4 ])
    """

    uses_rng = True
    max_norm: float = Field(default=3.0, gt=0, allow_inf_nan=False)
    noise_std: float = Field(default=0.002, ge=0, allow_inf_nan=False)

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: EmptyState,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, EmptyState]:
        aggregate = weak_dp(
            updates,
            num_examples,
            rng=rng,
            max_norm=self.max_norm,
            noise_std=self.noise_std,
            weighted=self.weighted,
        )
        return aggregate, state

"""Averaging rules: FedAvg and norm-bounded FedAvg."""

from __future__ import annotations

from typing import cast

import numpy as np
from pydantic import Field

from common.errors import AggregationError
from strategies import _math
from strategies.base import Aggregate, Counts, StatelessRule, Updates
from strategies.params import Weighting
from strategies.registries import aggregator


def average_weights(num_examples: Counts, *, weighted: bool) -> _math.F64:
    """``w_i = n_i / sum_j n_j`` (``weighted``) or ``1/n``, in float64: ``(n,)``."""
    n = num_examples.shape[0]
    if not weighted:
        return np.full(n, 1.0 / n)
    if np.any(num_examples < 0) or num_examples.sum() <= 0:
        raise AggregationError(
            f"weighted average: example counts must be >= 0 with a positive sum, "
            f"got {num_examples.tolist()}"
        )
    counts = num_examples.astype(np.float64)
    return cast(_math.F64, counts / counts.sum())


def fedavg(updates: Updates, num_examples: Counts, *, weighted: bool) -> Aggregate:
    """``sum_i w_i x_i`` (see :class:`FedAvg`)."""
    return _math.mix(average_weights(num_examples, weighted=weighted), updates)


def norm_bounding(
    updates: Updates, num_examples: Counts, *, max_norm: float, weighted: bool
) -> Aggregate:
    """``sum_i w_i x_i min(1, M / ||x_i||)`` (see :class:`NormBounding`)."""
    weights = average_weights(num_examples, weighted=weighted)
    factors = _math.clip_factors(_math.squared_norms(updates), max_norm)
    return _math.mix(weights * factors, updates)


@aggregator("fedavg", kind="average")
class FedAvg(StatelessRule, Weighting):
    r"""FedAvg: the mean of the updates weighted by the clients' example counts.

    .. math::

        \bar x = \sum_{i=1}^{n} w_i x_i, \qquad
        w_i = \frac{n_i}{\sum_{j=1}^{n} n_j} \quad (\text{or } w_i = 1/n \text{ unweighted})

    Parameters
    ----------
    weighted : bool, default True
        Weight client i by its self-reported count :math:`n_i`; ``False`` gives ``1/n``
        (a Byzantine client can report any count).

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates (one BLAS product in that precision).

    Notes
    -----
    Bound: none (n >= 1). Breakdown point 0: one update can move it arbitrarily far.

    References
    ----------
    .. [1] McMahan, Moore, Ramage, Hampson, Agüera y Arcas 2017, "Communication-Efficient
       Learning of Deep Networks from Decentralized Data", AISTATS.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("fedavg")
    >>> rule(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1, 3]))  # (1*1 + 3*3) / 4
    array([2.5, 3.5])
    >>> strategies.get_aggregator("fedavg", weighted=False)(
    ...     np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1, 3]))
    array([2., 3.])
    """

    # Unweighted, it is the plain mean that central DP's noise is calibrated to.
    unweighted_mean_when = {"weighted": False}

    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        return fedavg(updates, num_examples, weighted=self.weighted)


@aggregator("norm_bounding", kind="average")
class NormBounding(StatelessRule, Weighting):
    r"""Norm bounding: FedAvg of the updates scaled onto the L2 ball of radius M.

    .. math::

        \bar x = \sum_{i=1}^{n} w_i \, x_i \min\!\left(1, \frac{M}{\lVert x_i \rVert_2}\right),
        \qquad w_i \text{ as in FedAvg}

    Parameters
    ----------
    max_norm : float, > 0, required
        M in Sun et al. 2019: the clipping radius.
    weighted : bool, default True
        Weight by the self-reported example counts, as :class:`FedAvg`.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    Bound: none (n >= 1). A Byzantine update moves the aggregate by at most :math:`w_i M`.

    References
    ----------
    .. [1] Sun, Kairouz, Suresh, McMahan 2019, "Can You Really Backdoor Federated Learning?",
       arXiv 1911.07963.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("norm_bounding", max_norm=1.0, weighted=False)
    >>> rule(np.array([[3.0, 4.0], [0.0, 1.0]]), np.ones(2, dtype=np.int64))  # (3,4) -> (.6,.8)
    array([0.3, 0.9])
    """

    max_norm: float = Field(gt=0, allow_inf_nan=False)

    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        return norm_bounding(updates, num_examples, max_norm=self.max_norm, weighted=self.weighted)

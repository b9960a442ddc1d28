"""Coordinate-wise rules: median and trimmed mean (Yin et al. 2018)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, StatelessRule, Updates
from strategies.registries import aggregator


def median(updates: Updates) -> Aggregate:
    """Coordinate-wise median (see :class:`Median`)."""
    out = np.empty(updates.shape[1], dtype=updates.dtype)
    for cols, block in _math.sorted_column_blocks(updates):
        out[cols] = _math.median_of_sorted(block.T)
    return out


def trimmed_mean(updates: Updates, *, num_trimmed: int) -> Aggregate:
    """Mean of each coordinate's sorted values ``x_(b) .. x_(n-b-1)`` (see :class:`TrimmedMean`)."""
    n, d = updates.shape
    out = np.empty(d, dtype=updates.dtype)
    for cols, block in _math.sorted_column_blocks(updates):
        # numpy's pairwise sum along each sorted row, in the input's precision (within the
        # mixture bound (n-2b+1) eps |x|); not a BLAS call per block, which wakes OpenBLAS's
        # threads every time and is slower under load
        np.sum(block[:, num_trimmed : n - num_trimmed], axis=1, out=out[cols])
    out /= n - 2 * num_trimmed
    return out


@aggregator("median", kind="coordinate-wise")
class Median(StatelessRule):
    r"""Coordinate-wise median (the mean of the two middle values when n is even).

    .. math::

        \bar x_c = \operatorname{median}\{x_{1c}, \dots, x_{nc}\}
        \quad \text{for every coordinate } c

    Parameters
    ----------
    None
        The rule has no parameter.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    Bound: none (n >= 1); every coordinate stays inside the honest range while f < n/2.
    Example counts are ignored (a Byzantine client can report any count).

    References
    ----------
    .. [1] Yin, Chen, Ramchandran, Bartlett 2018, "Byzantine-Robust Distributed Learning:
       Towards Optimal Statistical Rates", ICML.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("median")
    >>> rule(np.array([[1.0, 1.0], [100.0, 5.0], [3.0, 2.0], [0.0, 10.0]]), np.ones(4, np.int64))
    array([2. , 3.5])
    """

    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        return median(updates)


@aggregator("trimmed_mean", kind="coordinate-wise")
class TrimmedMean(StatelessRule):
    r"""Coordinate-wise trimmed mean: drop the b largest and b smallest values, average the rest.

    .. math::

        \bar x_c = \frac{1}{n - 2b} \sum_{k=b}^{n-b-1} x_{(k)c}, \qquad
        x_{(0)c} \le \dots \le x_{(n-1)c} \text{ the sorted values of coordinate } c

    Parameters
    ----------
    num_trimmed : int, >= 0, default 0
        b: values removed from EACH tail per coordinate. A count, not Yin et al.'s fraction
        :math:`\beta = b/n`, so "tolerates b Byzantine clients" is exact for every n.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    Bound: n >= 2b+1 (one value kept); with at most b Byzantine clients every coordinate
    stays inside the honest range. Example counts are ignored.

    References
    ----------
    .. [1] Yin, Chen, Ramchandran, Bartlett 2018, "Byzantine-Robust Distributed Learning:
       Towards Optimal Statistical Rates", ICML.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("trimmed_mean", num_trimmed=1)
    >>> x = np.array([[1.0, -50.0], [2.0, 0.0], [3.0, 1.0], [100.0, 2.0]])
    >>> rule(x, np.ones(4, dtype=np.int64))  # mean(2, 3), mean(0, 1)
    array([2.5, 0.5])
    """

    bound = "n >= 2b+1"
    num_trimmed: int = Field(default=0, ge=0)

    def min_clients(self) -> int:
        return 2 * self.num_trimmed + 1

    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        return trimmed_mean(updates, num_trimmed=self.num_trimmed)

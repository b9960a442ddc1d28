"""Distance-based selection rules: Krum, Multi-Krum (Blanchard et al. 2017), Bulyan."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, StatelessRule, Updates
from strategies.params import Byzantine
from strategies.registries import aggregator


def krum(updates: Updates, *, num_byzantine: int) -> Aggregate:
    """The update with the lowest Krum score, a copy in the input dtype (see :class:`Krum`)."""
    distances = _math.pairwise_squared_distances(updates)
    active = np.ones(updates.shape[0], dtype=bool)
    best = int(np.argmin(_math.krum_scores(distances, num_byzantine, active)))
    return _math.like(updates[best], updates)  # astype copies: the caller owns the result


def multi_krum(updates: Updates, *, num_byzantine: int, num_selected: int) -> Aggregate:
    """Unweighted mean of the m lowest Krum scores (see :class:`MultiKrum`)."""
    n = updates.shape[0]
    distances = _math.pairwise_squared_distances(updates)
    scores = _math.krum_scores(distances, num_byzantine, np.ones(n, dtype=bool))
    chosen = np.argsort(scores, kind="stable")[:num_selected]
    weights = np.zeros(n)
    weights[chosen] = 1.0 / num_selected
    return _math.mix(weights, updates)


def bulyan(updates: Updates, *, num_byzantine: int) -> Aggregate:
    """Repeated Krum, then the coordinate-wise closest-to-median mean (see :class:`Bulyan`)."""
    n = updates.shape[0]
    theta = n - 2 * num_byzantine
    distances = _math.pairwise_squared_distances(updates)
    remaining = np.ones(n, dtype=bool)
    selected: list[int] = []
    for _ in range(theta):  # theta <= n picks over an (n, n) matrix, never over d
        best = int(np.argmin(_math.krum_scores(distances, num_byzantine, remaining)))
        selected.append(best)
        remaining[best] = False
    # The fancy index already copies the selected rows, so they are sorted in place (stage 2
    # needs the whole sorted array, unlike median and trimmed mean's blocked sorts).
    ordered = updates[np.sort(selected)]
    ordered.sort(axis=0)
    beta = theta - 2 * num_byzantine
    return _math.like(_math.closest_to_median_mean(ordered, beta), updates)


@aggregator("krum", kind="selection")
class Krum(StatelessRule, Byzantine):
    r"""Krum: the update closest, in squared distance, to its n - f - 2 nearest other updates.

    .. math::

        \bar x = x_{i^*}, \qquad i^* = \arg\min_i \sum_{j \in N_i} \lVert x_i - x_j \rVert^2,
        \qquad N_i \text{ the } n - f - 2 \text{ updates nearest } x_i \ (j \ne i)

    Parameters
    ----------
    num_byzantine : int, >= 0, default 0
        f in Blanchard et al. 2017: the number of Byzantine updates to tolerate.

    Returns
    -------
    ndarray, shape (n_params,)
        A copy of the selected update, in its dtype.

    Notes
    -----
    Bound: n >= 2f+3. Ties go to the lowest index; distances come from one centred float64
    Gram product. Example counts are ignored.

    References
    ----------
    .. [1] Blanchard, El Mhamdi, Guerraoui, Stainer 2017, "Machine Learning with Adversaries:
       Byzantine Tolerant Gradient Descent", NeurIPS.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("krum", num_byzantine=1)
    >>> x = np.array([[0.0], [1.0], [3.0], [4.5], [100.0]])  # scores 10, 5, 6.25, 14.5, ...
    >>> rule(x, np.ones(5, dtype=np.int64))
    array([1.])
    """

    bound = "n >= 2f+3"

    def min_clients(self) -> int:
        return 2 * self.num_byzantine + 3

    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        return krum(updates, num_byzantine=self.num_byzantine)


@aggregator("multi_krum", kind="selection")
class MultiKrum(StatelessRule, Byzantine):
    r"""Multi-Krum: the unweighted mean of the m updates with the lowest Krum scores.

    .. math::

        \bar x = \frac{1}{m} \sum_{i \in M} x_i, \qquad
        M \text{ the } m \text{ lowest } \sum_{j \in N_i} \lVert x_i - x_j \rVert^2
        \text{ (scored once on all } n)

    Parameters
    ----------
    num_byzantine : int, >= 0, default 0
        f in Blanchard et al. 2017.
    num_selected : int, >= 1, default 1
        m: how many lowest-score updates are averaged (m = 1 is Krum).

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    Bound: n >= max(2f+3, m+f). The mean is unweighted (counts are self-reported); Flower
    weights it by the counts.

    References
    ----------
    .. [1] Blanchard, El Mhamdi, Guerraoui, Stainer 2017, "Machine Learning with Adversaries:
       Byzantine Tolerant Gradient Descent", NeurIPS.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("multi_krum", num_byzantine=1, num_selected=2)
    >>> rule(np.array([[0.0], [1.0], [3.0], [4.5], [100.0]]), np.ones(5, dtype=np.int64))
    array([2.])
    """

    bound = "n >= max(2f+3, m+f)"
    num_selected: int = Field(default=1, ge=1)

    def min_clients(self) -> int:
        return max(2 * self.num_byzantine + 3, self.num_selected + self.num_byzantine)

    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        return multi_krum(updates, num_byzantine=self.num_byzantine, num_selected=self.num_selected)


@aggregator("bulyan", kind="selection")
class Bulyan(StatelessRule, Byzantine):
    r"""Bulyan over Krum: theta = n - 2f updates picked by repeated Krum, then per coordinate
    the mean of the beta = theta - 2f picked values closest to their median.

    .. math::

        S &= \text{Krum } \theta \text{ times, removing each pick and re-scoring with }
        \operatorname{clip}(n' - f - 2, 1, n' - 1) \text{ neighbours} \\
        \bar x_c &= \frac{1}{\beta} \sum_{i \in B_c} x_{ic}, \qquad
        B_c \text{ the } \beta \text{ members of } S \text{ closest to }
        \operatorname{median}_{i \in S} x_{ic}

    Parameters
    ----------
    num_byzantine : int, >= 0, default 0
        f in El Mhamdi et al. 2018.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    Bound: n >= 4f+3. Re-scoring reuses one distance matrix with removed rows masked.
    Example counts are ignored.

    References
    ----------
    .. [1] El Mhamdi, Guerraoui, Rouault 2018, "The Hidden Vulnerability of Distributed
       Learning in Byzantium", ICML.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("bulyan", num_byzantine=1)
    >>> x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [50.0], [100.0]])
    >>> rule(x, np.ones(7, dtype=np.int64))  # picks 0..4; the 3 closest to 2 are 1, 2, 3
    array([2.])
    """

    bound = "n >= 4f+3"

    def min_clients(self) -> int:
        return 4 * self.num_byzantine + 3

    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        return bulyan(updates, num_byzantine=self.num_byzantine)

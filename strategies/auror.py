"""Auror (Shen et al. 2016): find the coordinates on which the clients split into two distant
groups ("indicative features"), cluster the clients on those, and average the majority."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, RuleStage, Updates, frozen
from strategies.registries import aggregator

Mask = NDArray[np.bool_]


class Indicative(NamedTuple):
    """The indicative coordinates (fixed after the search rounds) and the rounds seen."""

    mask: Mask
    rounds: int


def two_means_gap(updates: Updates) -> _math.F64:
    """Per coordinate, the distance between the two centres of the optimal 1-D 2-means split
    of the n values (exact: the best of the n - 1 splits of the sorted values)."""
    ordered = np.sort(updates.astype(np.float64), axis=0)
    n = ordered.shape[0]
    total, total_sq = ordered.sum(axis=0), (ordered**2).sum(axis=0)
    left = np.cumsum(ordered, axis=0)[:-1]
    left_sq = np.cumsum(ordered**2, axis=0)[:-1]
    k = np.arange(1, n, dtype=np.float64)[:, None]
    right, right_sq = total - left, total_sq - left_sq
    cost = (left_sq - left**2 / k) + (right_sq - right**2 / (n - k))
    best = np.argmin(cost, axis=0)
    cols = np.arange(ordered.shape[1])
    size = best + 1.0
    gap: _math.F64 = np.abs(right[best, cols] / (n - size) - left[best, cols] / size)
    return gap


def majority_of_two_means(points: _math.F64, iterations: int = 100) -> Mask:
    """The larger group of Lloyd's 2-means from the two points farthest apart (deterministic and
    independent of the row order); a tie goes to the group whose centre is nearer the origin."""
    distances = _math.pairwise_squared_distances(points)
    i, j = np.unravel_index(int(np.argmax(distances)), distances.shape)
    centres = points[[i, j]]
    labels = np.zeros(len(points), dtype=np.int64)
    for _ in range(iterations):
        to_centres = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)
        new = np.argmin(to_centres, axis=1)
        centres = np.stack([points[new == c].mean(axis=0) for c in (0, 1)])
        if np.array_equal(new, labels):
            break
        labels = new
    sizes = np.bincount(labels, minlength=2)
    if sizes[0] != sizes[1]:
        return np.asarray(labels == int(np.argmax(sizes)))
    return np.asarray(labels == int(np.argmin((centres**2).sum(axis=1))))


@aggregator("auror", kind="filtering")
class Auror(RuleStage[Indicative]):
    r"""Auror: in the first rounds, mark the coordinates whose values split the clients into two
    groups with centres at least tau apart; cluster the clients in two on those coordinates and
    average the larger group.

    .. math::

        I = \{c : |\mu_1(c) - \mu_2(c)| \ge \tau\}, \qquad
        \bar x = \frac{1}{|G|} \sum_{i \in G} x_i

    with :math:`\mu_{1,2}(c)` the centres of the 1-D 2-means split of :math:`(x_{ic})_i`
    (recomputed in each of the first ``indicative_rounds`` rounds, then fixed) and :math:`G` the
    larger 2-means cluster of the rows restricted to :math:`I`.

    Parameters
    ----------
    indicative_threshold : float, > 0, default 0.002
        tau (FLPoison's default; it suggests 1e-4 to 7e-4 for FedSGD gradients).
    indicative_rounds : int, >= 1, default 10
        Rounds in which the indicative coordinates are searched (FLPoison's
        ``indicative_find_epoch``).

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates: the mean of all updates when no coordinate
        is indicative (the clients agree everywhere).

    Notes
    -----
    Where it differs from FLPoison (the authors published no code): the indicative search runs
    on all coordinates, not the output layer only (the aggregator does not see the model's
    layout); the 1-D splits are the exact optimum rather than ``KMeans(random_state=0)``; the
    final 2-means is Lloyd's from the farthest pair, so the result does not depend on the row
    order (k-means++ seeding does); equal halves go to the group nearer the origin; no
    indicative coordinate gives the plain mean (FLPoison fails on an empty feature set).
    Example counts are ignored. Bound: none on n; the larger cluster must be honest.

    References
    ----------
    .. [1] Shen, Tople, Saxena 2016, "Auror: Defending Against Poisoning Attacks in
       Collaborative Deep Learning Systems", ACSAC.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("auror", indicative_threshold=1.0)
    >>> x = np.array([[0.1, 1.0], [0.2, 1.1], [0.0, 0.9], [0.1, 5.0]])
    >>> # coordinate 1 splits {1.0, 1.1, 0.9} from {5.0}: the three form the larger group
    >>> rule(x, np.ones(4, dtype=np.int64))
    array([0.1, 1. ])
    """

    bound = "none; the larger cluster must be honest"
    indicative_threshold: float = Field(default=0.002, gt=0, allow_inf_nan=False)
    indicative_rounds: int = Field(default=10, ge=1)

    def init(self, num_params: int) -> Indicative:
        return Indicative(frozen(np.zeros(num_params, dtype=np.bool_)), 0)

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: Indicative,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, Indicative]:
        mask = state.mask
        if state.rounds < self.indicative_rounds and updates.shape[0] > 1:
            mask = frozen(two_means_gap(updates) >= self.indicative_threshold)
        members = np.ones(updates.shape[0], dtype=np.bool_)
        if mask.any() and updates.shape[0] > 1:
            members = majority_of_two_means(updates[:, mask].astype(np.float64))
        aggregate = _math.mix(members / members.sum(), updates)
        return aggregate, Indicative(mask, state.rounds + 1)

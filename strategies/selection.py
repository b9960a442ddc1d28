"""Distance-based selection rules: Krum, Multi-Krum (Blanchard et al. 2017), Bulyan."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, Updates
from strategies.params import ByzantineParams
from strategies.registries import AGGREGATORS


class KrumParams(ByzantineParams):
    """Krum: the number of Byzantine clients f."""

    bound = "n >= 2f+3"

    def min_clients(self) -> int:
        return 2 * self.num_byzantine + 3


@AGGREGATORS.register("krum", KrumParams, kind="selection")
def krum(updates: Updates, num_examples: Counts, *, num_byzantine: int = 0) -> Aggregate:
    """Krum: return the update ``x_i*`` with ``i* = argmin_i sum_{j in N_i} ||x_i - x_j||^2``,
    ``N_i`` the ``n - f - 2`` updates nearest to ``x_i`` (excluding ``x_i``).

    Blanchard et al. 2017, "Machine Learning with Adversaries: Byzantine Tolerant Gradient
    Descent" (f = ``num_byzantine``). Bound: n >= 2f+3. Ties go to the lowest index.
    Example counts are ignored.
    """
    del num_examples  # robust rules do not trust self-reported counts
    distances = _math.pairwise_squared_distances(updates)
    active = np.ones(updates.shape[0], dtype=bool)
    best = int(np.argmin(_math.krum_scores(distances, num_byzantine, active)))
    return _math.like(updates[best], updates)  # astype copies: the caller owns the result


class MultiKrumParams(KrumParams):
    """Multi-Krum: f and the number m of updates averaged."""

    bound = "n >= max(2f+3, m+f)"
    num_selected: int = Field(default=1, ge=1)
    """m in Blanchard et al. 2017: how many lowest-score updates are averaged (m <= n - f)."""

    def min_clients(self) -> int:
        return max(2 * self.num_byzantine + 3, self.num_selected + self.num_byzantine)


@AGGREGATORS.register("multi_krum", MultiKrumParams, kind="selection")
def multi_krum(
    updates: Updates, num_examples: Counts, *, num_byzantine: int = 0, num_selected: int = 1
) -> Aggregate:
    """Multi-Krum: ``1/m sum_{i in M} x_i``, M the m updates with the lowest Krum scores
    (scores computed once on all n updates, as in the paper; m = 1 is Krum).

    Blanchard et al. 2017, "Machine Learning with Adversaries: Byzantine Tolerant Gradient
    Descent" (f = ``num_byzantine``, m = ``num_selected``). Bound: n >= 2f+3 and
    m <= n - f. The mean is unweighted (counts are self-reported); Flower weights it.
    """
    del num_examples  # robust rules do not trust self-reported counts
    n = updates.shape[0]
    distances = _math.pairwise_squared_distances(updates)
    scores = _math.krum_scores(distances, num_byzantine, np.ones(n, dtype=bool))
    chosen = np.argsort(scores, kind="stable")[:num_selected]
    weights = np.zeros(n)
    weights[chosen] = 1.0 / num_selected
    return _math.mix(weights, updates)


class BulyanParams(ByzantineParams):
    """Bulyan: the number of Byzantine clients f."""

    bound = "n >= 4f+3"

    def min_clients(self) -> int:
        return 4 * self.num_byzantine + 3


@AGGREGATORS.register("bulyan", BulyanParams, kind="selection")
def bulyan(updates: Updates, num_examples: Counts, *, num_byzantine: int = 0) -> Aggregate:
    """Bulyan over Krum: select theta = n - 2f updates by repeated Krum (pick the lowest Krum
    score among the remaining updates, remove it, re-score with ``n' - f - 2`` neighbours,
    clamped to ``[1, n' - 1]``), then per coordinate average the beta = theta - 2f selected
    values closest to the selected values' median.

    El Mhamdi, Guerraoui, Rouault 2018, "The Hidden Vulnerability of Distributed Learning in
    Byzantium" (f = ``num_byzantine``). Bound: n >= 4f+3. Re-scoring reuses one distance
    matrix with removed rows masked. Example counts are ignored.
    """
    del num_examples  # robust rules do not trust self-reported counts
    n = updates.shape[0]
    theta = n - 2 * num_byzantine
    distances = _math.pairwise_squared_distances(updates)
    remaining = np.ones(n, dtype=bool)
    selected: list[int] = []
    for _ in range(theta):  # theta <= n picks over an (n, n) matrix, never over d
        best = int(np.argmin(_math.krum_scores(distances, num_byzantine, remaining)))
        selected.append(best)
        remaining[best] = False
    # The fancy index already copies the selected rows, so they are sorted in place (the same
    # column sort as _math.sorted_columns, without its second copy).
    ordered = updates[np.sort(selected)]
    ordered.sort(axis=0)
    beta = theta - 2 * num_byzantine
    return _math.like(_math.closest_to_median_mean(ordered, beta), updates)

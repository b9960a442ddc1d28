"""The simple clustering baseline of FLPoison (Sok 2025): DBSCAN on the updates, then the mean
of the largest cluster."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, StatelessRule, Updates
from strategies.registries import aggregator


def largest_dbscan_cluster(updates: Updates, *, eps: float, min_samples: int) -> NDArray[np.bool_]:
    """Members of the most populous DBSCAN cluster of the rows (Euclidean distances computed in
    float64); ties go to the cluster DBSCAN labels first; empty if every row is noise."""
    from sklearn.cluster import DBSCAN  # imported on first use: sklearn takes ~1 s to load

    distances = np.sqrt(np.maximum(_math.pairwise_squared_distances(updates), 0.0))
    clustering: Any = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed")
    labels: NDArray[np.int64] = clustering.fit(distances).labels_
    if not (labels >= 0).any():
        return np.zeros(len(labels), dtype=np.bool_)
    sizes = np.bincount(labels[labels >= 0])
    return np.asarray(labels == int(np.argmax(sizes)))


def simple_clustering(updates: Updates, *, eps: float, min_samples: int) -> Aggregate:
    """Unweighted mean of the largest DBSCAN cluster (see :class:`SimpleClustering`)."""
    members = largest_dbscan_cluster(updates, eps=eps, min_samples=min_samples)
    if not members.any():
        return np.zeros(updates.shape[1], dtype=updates.dtype)
    return _math.mix(members / members.sum(), updates)


@aggregator("simple_clustering", kind="filtering")
class SimpleClustering(StatelessRule):
    r"""Simple clustering: DBSCAN on the updates, the unweighted mean of the largest cluster.

    .. math::

        C = \operatorname*{arg\,max}_{\text{DBSCAN clusters } K} |K|, \qquad
        \bar x = \frac{1}{|C|} \sum_{i \in C} x_i

    with DBSCAN on the Euclidean distances :math:`\lVert x_i - x_j \rVert`, radius ``eps`` and
    ``min_samples`` points (the point itself included) for a core point.

    Parameters
    ----------
    eps : float, > 0, default 0.05
        DBSCAN's neighbourhood radius, in the units of the updates (FLPoison's default, made for
        FedSGD gradients; FedAvg deltas need a radius near their typical distance).
    min_samples : int, >= 1, default 3
        DBSCAN's core-point size (FLPoison's default).

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates; zero (the global model is kept) if every
        update is noise.

    Notes
    -----
    FLPoison's baseline with its default DBSCAN clustering (its MeanShift option is the sign
    statistic clustering of ``signguard``'s family and is not included). Where it differs from
    FLPoison: distances are float64 and precomputed; when every update is noise FLPoison
    fails (``argmax`` of an empty list) and we keep the global model; ties between equally
    large clusters go to the first label. Example counts are ignored. Bound: none on n; the
    largest cluster must be honest.

    References
    ----------
    .. [1] Xu et al. 2025, "Sok: Benchmarking Poisoning Attacks and Defenses in Federated
       Learning" (FLPoison), arXiv 2502.03801; DBSCAN: Ester, Kriegel, Sander, Xu 1996, KDD.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("simple_clustering", eps=0.5, min_samples=2)
    >>> x = np.array([[1.0, 0.0], [1.2, 0.0], [1.4, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> rule(x, np.ones(5, dtype=np.int64))  # clusters {0, 1, 2} and {3, 4}: the larger wins
    array([1.2, 0. ])
    """

    bound = "none; the largest cluster must be honest"
    eps: float = Field(default=0.05, gt=0, allow_inf_nan=False)
    min_samples: int = Field(default=3, ge=1)

    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        return simple_clustering(updates, eps=self.eps, min_samples=self.min_samples)

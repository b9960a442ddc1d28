"""RFLBAT (Wang, Zhai, Zhan, Xia 2022): PCA of the updates to two dimensions, an outlier pass on
the summed distances there, k-means with the gap statistic's number of clusters, the cluster
whose members are least alike by cosine, a second outlier pass, and the mean."""

from __future__ import annotations

import hashlib

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, EmptyState, MemorylessRule, Updates
from strategies.flame import cosine_distances
from strategies.kmeans import gap_clusters, kmeans
from strategies.registries import aggregator

Indices = NDArray[np.int64]
_RESTARTS = 10  # k-means++ starts per fit: scikit-learn's n_init when the authors' code ran


def principal_components(updates: Updates) -> _math.F64:
    """The ``(n, 2)`` coordinates of the updates on their two principal axes (PCA of the
    centred rows), from the float64 pairwise distances by classical scaling: the centred Gram
    matrix ``-J D J / 2`` has the principal coordinates as its scaled eigenvectors."""
    n = updates.shape[0]
    centring = np.eye(n) - 1.0 / n
    gram = -0.5 * centring @ _math.pairwise_squared_distances(updates) @ centring
    values, vectors = np.linalg.eigh(gram)  # ascending
    # An eigenvalue within the rounding of the largest is zero: no axis (rows on a line).
    values[values <= n * np.finfo(np.float64).eps * max(values.max(), 0.0)] = 0.0
    top = np.argsort(values)[::-1][:2]
    coords = vectors[:, top] * np.sqrt(values[top])
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))


def inliers(points: _math.F64, members: Indices, factor: float) -> Indices:
    """The ``members`` whose summed Euclidean distance to the other members' ``points`` is at
    most ``factor`` times the median of those sums."""
    rows = points[members]
    sums = np.sqrt(((rows[:, None, :] - rows[None]) ** 2).sum(axis=2)).sum(axis=1)
    return np.asarray(members[sums <= factor * np.median(sums)], dtype=np.int64)


def canonical(updates: Updates, members: Indices) -> Indices:
    """``members`` in an order fixed by their rows' values (a digest of each float64 row), so
    k-means, whose seeding draws row positions, gives the same clusters for any client order."""

    def key(i: np.int64) -> bytes:
        row = np.ascontiguousarray(updates[i], dtype=np.float64)
        return hashlib.blake2b(row.tobytes(), digest_size=16).digest()

    return np.array(sorted(members, key=key), dtype=np.int64)


def least_alike_cluster(similarity: _math.F64, members: Indices, labels: Indices) -> Indices:
    """The members of the cluster with the smallest median over its members of their mean
    cosine similarity to the cluster (self included); singletons score +inf."""
    scores = []
    for label in range(int(labels.max()) + 1):
        cluster = members[labels == label]
        inner = similarity[np.ix_(cluster, cluster)]
        scores.append(np.median(inner.mean(axis=1)) if len(cluster) > 1 else np.inf)
    return np.asarray(members[labels == int(np.argmin(scores))], dtype=np.int64)


def rflbat(
    updates: Updates,
    *,
    rng: np.random.Generator,
    eps1: float,
    eps2: float,
    num_references: int,
    max_clusters: int,
) -> Aggregate:
    """Unweighted mean of the updates RFLBAT accepts (see :class:`RFLBAT`)."""
    points = principal_components(updates)
    kept = canonical(updates, inliers(points, np.arange(updates.shape[0]), eps1))
    k = gap_clusters(
        points[kept],
        rng=rng,
        num_references=num_references,
        max_clusters=max_clusters,
        restarts=_RESTARTS,
    )
    labels = kmeans(points[kept], k, rng=rng, restarts=_RESTARTS).labels
    chosen = least_alike_cluster(1.0 - cosine_distances(updates), kept, labels)
    accepted = inliers(points, chosen, eps2)
    weights = np.zeros(updates.shape[0])
    weights[accepted] = 1.0 / len(accepted)
    return _math.mix(weights, updates)


@aggregator("rflbat", kind="filtering")
class RFLBAT(MemorylessRule):
    r"""RFLBAT: project the updates on their first two principal components, drop the far
    outliers there, cluster the rest with k-means, keep the cluster whose members are least
    alike, drop its outliers, and average.

    .. math::

        e_i = \sum_{j \ne i} \lVert p_i - p_j \rVert, \quad
        A_1 = \{i : e_i \le \epsilon_1 \operatorname{med}_j e_j\}, \quad
        v_C = \operatorname{med}_{i \in C} \frac{1}{|C|} \sum_{j \in C} \cos(x_i, x_j)

    with :math:`p_i` update i's two principal coordinates; k-means (k-means++, 10 starts) on
    :math:`\{p_i\}_{A_1}` with k from the gap statistic
    (:func:`strategies.kmeans.gap_clusters`); :math:`C^*` the cluster of least :math:`v_C`
    (singletons excluded); :math:`A_2` the members of :math:`C^*` whose summed distance to the
    other members is at most :math:`\epsilon_2` times the median; :math:`\bar x` the unweighted
    mean of :math:`A_2`. Backdoor updates push one shared objective, so they are more alike than
    honest ones: the least alike cluster is taken as the honest one.

    Parameters
    ----------
    eps1 : float, >= 1, default 10
        First outlier pass (the authors' value, as 3DFed's and BackFed's).
    eps2 : float, >= 1, default 4
        Second outlier pass, within the chosen cluster.
    num_references : int, >= 1, default 5
        Uniform reference sets of the gap statistic (``num_sampling``).
    max_clusters : int, >= 1, default 10
        Largest number of clusters the gap statistic considers (``K_max``; also capped at the
        distinct points and n - 1).

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    The paper's authors published no code; checked against the two public implementations:
    3DFed's ``defenses/rflbat.py`` (haoyangliASTAPLE/3DFed) and BackFed's ``RFLBATServer``.
    Deviations: an outlier is strictly above the threshold (both codes keep ``e_i < eps * med``,
    which drops every update when all are identical); the gap statistic's :math:`s_{k+1}` as
    Tibshirani et al. and BackFed (3DFed tests with :math:`s_k`); PCA from the distances
    (classical scaling: the same coordinates up to each axis's sign, which no later step sees);
    k-means in numpy with the points in an order fixed by their values (scikit-learn's seeding
    depends on the row order: contract, permutation invariance) and the generator the server
    passes. Bound: none on n; the backdoor updates must be more alike than the honest ones.

    References
    ----------
    .. [1] Wang, Zhai, Zhan, Xia 2022, "RFLBAT: A Robust Federated Learning Algorithm against
       Backdoor Attack", arXiv 2201.03772.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("rflbat", max_clusters=2)
    >>> honest = [[1, 0.3, 0], [1, -0.3, 0], [1, 0, 0.3], [1, 0, -0.3]]
    >>> honest += [[1, 0.2, 0.2], [1, -0.2, -0.2]]  # mean (1, 0, 0)
    >>> x = np.array(honest + [[0.0, 0.0, 1.0]] * 4)  # four poisoners send one shared update
    >>> rule(x, np.ones(10, dtype=np.int64))  # the poisoners' cluster is the most alike
    array([1., 0., 0.])
    """

    uses_rng = True
    bound = "none; the backdoor updates must be more alike than the honest ones"
    eps1: float = Field(default=10.0, ge=1.0, allow_inf_nan=False)
    eps2: float = Field(default=4.0, ge=1.0, allow_inf_nan=False)
    num_references: int = Field(default=5, ge=1)
    max_clusters: int = Field(default=10, ge=1)

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: EmptyState,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, EmptyState]:
        aggregate = rflbat(
            updates,
            rng=rng,
            eps1=self.eps1,
            eps2=self.eps2,
            num_references=self.num_references,
            max_clusters=self.max_clusters,
        )
        return aggregate, state

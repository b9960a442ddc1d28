"""DeepSight (Rieger et al., NDSS 2022): label each update by its output layer's threshold
exceedings, cluster the updates on three views of the model, drop the clusters with too many
suspicious members, clip the rest to the median norm and average them."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, Updates
from strategies.flame import cosine_distances
from strategies.layout import DDifProbe, InspectingRule, Inspection, Layout
from strategies.registries import aggregator

Labels = NDArray[np.int64]


def neups(
    kernel: _math.F64, bias: _math.F64, threshold_factor: float
) -> tuple[_math.F64, _math.F64]:
    """Normalised update energies ``(n, classes)`` of the output neurons and each update's
    threshold exceedings ``(n,)``, from the output layer's kernel ``(n, inputs, classes)`` and
    bias ``(n, classes)`` updates."""
    energy = np.abs(bias) + np.abs(kernel).sum(axis=1)
    squared = energy**2
    total = squared.sum(axis=1, keepdims=True)
    neup = np.divide(squared, total, out=np.zeros_like(squared), where=total > 0)
    factor = max(threshold_factor, 1.0 / neup.shape[1])
    exceedings = (neup > factor * neup.max(axis=1, keepdims=True)).sum(axis=1)
    return neup, exceedings.astype(np.float64)


def hdbscan_labels(points: _math.F64, *, precomputed: bool, single: bool = False) -> Labels:
    """HDBSCAN labels with DeepSight's ``min_samples=3`` (both capped at n); -1 is noise. One
    point is its own cluster (HDBSCAN needs two)."""
    n = points.shape[0]
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    from sklearn.cluster import HDBSCAN  # imported on first use: sklearn takes ~1 s to load

    clustering: Any = HDBSCAN(
        metric="precomputed" if precomputed else "euclidean",
        min_cluster_size=min(5, n),
        min_samples=min(3, n),
        allow_single_cluster=single,
        copy=True,
    )
    return np.asarray(clustering.fit(points).labels_, dtype=np.int64)


def label_distances(labels: Labels) -> _math.F64:
    """0 between two points with the same label, 1 otherwise (noise points share label -1,
    as in FLPoison's ``dists_from_clust``)."""
    return np.asarray(labels[:, None] != labels[None, :], dtype=np.float64)


def accepted_clusters(
    labels: Labels, suspicious: NDArray[np.bool_], tau: float
) -> NDArray[np.bool_]:
    """Members of the clusters (noise excluded) whose share of suspicious members is below
    ``tau``."""
    accepted = np.zeros(labels.shape, dtype=np.bool_)
    for label in np.unique(labels[labels >= 0]):
        members = labels == label
        accepted |= members & (suspicious[members].sum() < tau * members.sum())
    return accepted


def deepsight(
    updates: Updates,
    inspection: Inspection,
    *,
    num_seeds: int,
    num_samples: int,
    threshold_factor: float,
    tau: float,
    epsilon: float,
) -> Aggregate:
    """Mean of the accepted updates clipped to the median norm (see :class:`DeepSight`)."""
    assert inspection.ddifs is not None  # the chain checks it for a rule that needs_ddifs
    kernel_at, bias_at, classes = inspection.layout.output_layer()
    n = updates.shape[0]
    kernel = updates[:, kernel_at].astype(np.float64).reshape(n, -1, classes)
    bias = updates[:, bias_at].astype(np.float64)
    neup, exceedings = neups(kernel, bias, threshold_factor)
    ddifs = inspection.ddifs(updates, num_seeds, num_samples, epsilon)
    views = [
        np.mean([label_distances(hdbscan_labels(d, precomputed=False)) for d in ddifs], axis=0),
        label_distances(hdbscan_labels(neup, precomputed=False)),
        label_distances(hdbscan_labels(cosine_distances(bias), precomputed=True)),
    ]
    merged = hdbscan_labels(np.mean(views, axis=0), precomputed=True, single=True)
    suspicious = exceedings <= np.median(exceedings) / 2
    accepted = accepted_clusters(merged, suspicious, tau)
    if not accepted.any():
        return np.zeros(updates.shape[1], dtype=updates.dtype)
    squared = _math.squared_norms(updates)
    clip = _math.clip_factors(squared, float(np.median(np.sqrt(squared))))
    return _math.mix(np.where(accepted, clip, 0.0) / accepted.sum(), updates)


def softmax_regression_probe(global_flat: _math.F64, layout: Layout) -> DDifProbe:
    """The DDif probe of a softmax-regression model (one Dense layer, ``layout`` its kernel
    and bias) at ``global_flat``, in numpy: the server's probe does the same with its Keras
    model (``server/inspection.py``). Seed s draws uniform inputs with ``default_rng(s)``."""
    kernel_at, bias_at, classes = layout.output_layer()
    inputs = layout.shapes[-2][0]

    def probabilities(flat: _math.F64, x: _math.F64) -> _math.F64:
        logits = x @ flat[kernel_at].reshape(inputs, classes) + flat[bias_at]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def probe(updates: Updates, num_seeds: int, num_samples: int, epsilon: float) -> _math.F64:
        out = np.empty((num_seeds, updates.shape[0], classes))
        for seed in range(num_seeds):
            x = np.random.default_rng(seed).random((num_samples, inputs))
            base = probabilities(global_flat, x) + epsilon
            for i, row in enumerate(updates.astype(np.float64)):
                out[seed, i] = (probabilities(global_flat + row, x) / base).mean(axis=0)
        return out

    return probe


@aggregator("deepsight", kind="filtering")
class DeepSight(InspectingRule):
    r"""DeepSight: cluster the updates on their output probabilities, output-layer energies
    and bias directions, drop the clusters with many suspicious (few threshold exceedings)
    members, clip the rest to the median norm and average them.

    .. math::

        \mathrm{NEUP}_{i,k} = \frac{e_{i,k}^2}{\sum_{k'} e_{i,k'}^2}, \quad
        e_{i,k} = |b_{i,k}| + \sum_j |W_{i,jk}|, \quad
        \mathrm{TE}_i = \#\{k : \mathrm{NEUP}_{i,k} > \max(\theta, \tfrac1P)
        \max_{k'} \mathrm{NEUP}_{i,k'}\}

        \bar x = \frac{1}{|A|} \sum_{i \in A} x_i \min\!\left(1,
        \frac{\operatorname{med}_j \lVert x_j \rVert}{\lVert x_i \rVert}\right)

    with :math:`W_i, b_i` update i's output-layer kernel and bias (P classes), update i
    suspicious when :math:`\mathrm{TE}_i \le \operatorname{med}_j \mathrm{TE}_j / 2`, and
    :math:`A` the members of the clusters whose suspicious share is below :math:`\tau`. The
    clusters: HDBSCAN (``min_samples=3``, a single cluster allowed) on the mean of three
    0/1 "different cluster" matrices, from HDBSCAN on the DDifs (averaged over the seeds),
    on the NEUPs and on the cosine distances of the bias updates. The DDifs
    :math:`\frac1N \sum_x p_{G + x_i}(x)_k / (p_G(x)_k + \epsilon)` over N uniform-noise
    inputs come from the server's model (``inspection.ddifs``).

    Parameters
    ----------
    num_seeds : int, >= 1, default 3
        Noise data sets (seeds 0, 1, ...) for the DDifs.
    num_samples : int, >= 1, default 20000
        Noise inputs per seed.
    threshold_factor : float, in (0, 1], default 0.01
        :math:`\theta`; the factor is :math:`\max(\theta, 1/P)`.
    tau : float, in (0, 1], default 1/3
        A cluster is accepted when its suspicious share is below tau.
    epsilon : float, > 0, default 1e-6
        Guards the DDif division.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates; zero (the global model is kept) when no
        cluster is accepted.

    Notes
    -----
    As FLPoison's ``aggregators/deepsight.py`` (the authors' code is not public): HDBSCAN
    noise points share label -1 in the three matrices and are dropped in the final clustering,
    the median norm is over all n updates, the mean is unweighted. Deviations: scikit-learn's
    HDBSCAN (``min_cluster_size`` 5, capped at n) instead of the ``hdbscan`` package; the DDifs
    divide softmax probabilities (fedshield's models end in softmax); tau 1/3 as in the paper
    (FLPoison 0.33); n = 1 is its own cluster. Bound: none on n.

    References
    ----------
    .. [1] Rieger, Nguyen, Miettinen, Sadeghi 2022, "DeepSight: Mitigating Backdoor Attacks in
       Federated Learning Through Deep Model Inspection", NDSS.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> from strategies.deepsight import softmax_regression_probe
    >>> layout = strategies.Layout(((2, 3), (3,)))  # softmax regression, 2 inputs, 3 classes
    >>> probe = softmax_regression_probe(np.zeros(9), layout)  # the global model: all zero
    >>> bias = [[c, c, c] for c in (0.5, 0.6, 0.7, 0.8, 3.0)] + [[3.0, -1.0, -1.0]] * 5
    >>> x = np.hstack([np.zeros((10, 6)), bias])  # TE 3 (honest), TE 1 (suspicious)
    >>> rule = strategies.get_aggregator("deepsight", num_samples=100)
    >>> out = rule(x, np.ones(10, dtype=np.int64), inspection=strategies.Inspection(layout, probe))
    >>> np.round(out[6:], 4)  # the honest cluster; (3, 3, 3) clipped to the median norm
    array([0.903, 0.903, 0.903])
    """

    bound = "none; the accepted clusters must be mostly honest"
    needs_ddifs = True
    num_seeds: int = Field(default=3, ge=1)
    num_samples: int = Field(default=20000, ge=1)
    threshold_factor: float = Field(default=0.01, gt=0.0, le=1.0)
    tau: float = Field(default=1 / 3, gt=0.0, le=1.0)
    epsilon: float = Field(default=1e-6, gt=0.0, allow_inf_nan=False)

    def update_inspected(
        self, updates: Updates, num_examples: Counts, *, inspection: Inspection
    ) -> Aggregate:
        return deepsight(
            updates,
            inspection,
            num_seeds=self.num_seeds,
            num_samples=self.num_samples,
            threshold_factor=self.threshold_factor,
            tau=self.tau,
            epsilon=self.epsilon,
        )

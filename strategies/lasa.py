"""LASA (Xu et al., WACV 2025): per-update top-k sparsification, then, tensor by tensor, a
magnitude and a direction filter, and the mean of the kept sparsified updates."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from strategies import _math
from strategies.base import Aggregate, Counts, Updates
from strategies.layout import InspectingRule, Inspection, Layout
from strategies.registries import aggregator


def sparsify(updates: Updates, layout: Layout, sparsity: float) -> Updates:
    """Each row with its kernel entries (2-D and 4-D tensors) at or below its own
    ``k``-th largest kernel magnitude zeroed, ``k = floor(K (1 - sparsity))`` of its ``K``
    kernel entries; biases are left dense (the authors' ``update_mask``)."""
    kernel = np.zeros(layout.num_params, dtype=np.bool_)
    for shape, part in zip(layout.shapes, layout.slices(), strict=True):
        kernel[part] = len(shape) in (2, 4)
    total = int(kernel.sum())
    keep = int(total * (1.0 - sparsity))
    if sparsity == 0.0 or total == 0:
        return updates
    out = updates.copy()
    magnitudes = np.abs(updates[:, kernel])
    if keep == 0:
        dropped = np.ones_like(magnitudes, dtype=np.bool_)
    else:  # strictly above the k-th largest, so a zero threshold never keeps zeros
        threshold = np.partition(magnitudes, total - keep, axis=1)[:, total - keep]
        dropped = magnitudes <= threshold[:, None]
    out[:, kernel] = np.where(dropped, 0.0, updates[:, kernel])
    return out


def median_z_kept(values: _math.F64, bound: float) -> NDArray[np.bool_]:
    """``|v_i - med(v)| / std(v) < bound`` (LASA's MZ-score; a zero spread keeps no one,
    and the caller then keeps everyone, as the authors' ``NaN < bound`` does)."""
    spread = float(np.std(values))
    if spread == 0.0 or not np.isfinite(spread):
        return np.zeros(values.shape, dtype=np.bool_)
    return np.asarray(np.abs(values - np.median(values)) / spread < bound)


def sign_purity(rows: Updates) -> _math.F64:
    """``sum(sgn x) / sum(|sgn x|)`` per row (NaN for an all-zero row, which no MZ-score
    admits)."""
    signs = np.sign(rows.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(signs.sum(axis=1) / np.abs(signs).sum(axis=1))


def lasa(
    updates: Updates, layout: Layout, *, sparsity: float, norm_bound: float, sign_bound: float
) -> Aggregate:
    """Mean per tensor of the sparsified, median-norm-clipped updates that pass both filters
    on that tensor (see :class:`LASA`)."""
    squared = _math.squared_norms(updates)
    median = float(np.median(np.sqrt(squared)))
    clipped = _math.scale_rows(updates, _math.clip_factors(squared, median))
    sparse = sparsify(clipped, layout, sparsity)
    out = np.empty(updates.shape[1], dtype=updates.dtype)
    for part in layout.slices():
        rows = sparse[:, part]
        norms = np.sqrt(_math.squared_norms(rows))
        purity = sign_purity(rows)
        kept = median_z_kept(norms, norm_bound) & median_z_kept(purity, sign_bound)
        if not kept.any():
            kept[:] = True
        out[part] = _math.mix(kept / kept.sum(), rows)
    return out


@aggregator("lasa", kind="filtering")
class LASA(InspectingRule):
    r"""LASA: clip every update to the median norm, sparsify it to its largest kernel entries,
    then keep, tensor by tensor, the updates whose norm and sign purity are not outliers, and
    average those.

    .. math::

        \tilde x_i = \operatorname{top}_k\!\left(x_i \min\!\left(1,
        \frac{\operatorname{med}_j \lVert x_j \rVert}{\lVert x_i \rVert}\right)\right),
        \qquad
        \bar x^{(l)} = \frac{1}{|B_l|} \sum_{i \in B_l} \tilde x_i^{(l)},

        B_l = \left\{ i : \frac{|\,\lVert \tilde x_i^{(l)} \rVert - \operatorname{med}\,|}
        {\sigma} < \lambda_n \right\} \cap \left\{ i : \frac{|\rho_i^{(l)} -
        \operatorname{med}\,|}{\sigma} < \lambda_s \right\}, \quad
        \rho_i^{(l)} = \frac{\sum \operatorname{sgn} \tilde x_i^{(l)}}
        {\sum |\operatorname{sgn} \tilde x_i^{(l)}|}

    for each tensor :math:`l` of the model (``inspection.layout``), with med and
    :math:`\sigma` (the population standard deviation) taken over the n values, and
    :math:`B_l` all n updates when no update passes.

    Parameters
    ----------
    sparsity : float, in [0, 1), default 0.3
        Fraction of each update's kernel entries (2-D and 4-D tensors, jointly) zeroed:
        the ``floor(K (1 - sparsity))`` largest magnitudes are the threshold, and only entries
        strictly above it are kept. Biases stay dense.
    norm_bound : float, > 0, default 2.0
        :math:`\lambda_n` (the authors' default; 1.0 for their CIFAR runs).
    sign_bound : float, > 0, default 1.0
        :math:`\lambda_s`.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates.

    Notes
    -----
    As the authors' code does (``algorithms/defense/lasa.py``): clipping before
    sparsification, both filters on the clipped sparsified tensors, and the mean of the
    sparsified tensors. FLPoison instead filters the unclipped sparsified updates and averages
    the dense clipped ones. The sign purity is the authors'
    :math:`\tfrac12(1 + \rho (1 - s))` up to an affine map, which the MZ-score ignores. Example
    counts are ignored (unweighted, as in the paper). Bound: none on n.

    References
    ----------
    .. [1] Xu, Zhang, Li, Hu 2025, "Achieving Byzantine-Resilient Federated Learning via
       Layer-Adaptive Sparsified Model Aggregation", WACV.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("lasa", sparsity=0.0)
    >>> layout = strategies.Layout(((1, 2), (2,)))  # a Dense layer: kernel (1, 2), bias (2,)
    >>> bias = np.array([[0.8, 0.8], [0.9, 0.9], [1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]])
    >>> x = np.hstack([np.zeros((5, 2)), bias])
    >>> # bias: row 0's norm is 2.5 sigma below the median, row 4's sign purity (-1) 2.5
    >>> # sigma off; the kernel's norms are all 0 (sigma = 0): no row passes, all are kept
    >>> np.round(rule(x, np.ones(5, dtype=np.int64), inspection=strategies.Inspection(layout)), 4)
    array([0.    , 0.    , 0.9667, 0.9667])
    """

    bound = "none; per tensor, the MZ-score outliers are the attackers"
    sparsity: float = Field(default=0.3, ge=0.0, lt=1.0)
    norm_bound: float = Field(default=2.0, gt=0.0, allow_inf_nan=False)
    sign_bound: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)

    def update_inspected(
        self, updates: Updates, num_examples: Counts, *, inspection: Inspection
    ) -> Aggregate:
        return lasa(
            updates,
            inspection.layout,
            sparsity=self.sparsity,
            norm_bound=self.norm_bound,
            sign_bound=self.sign_bound,
        )

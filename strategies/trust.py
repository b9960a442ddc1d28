"""Trust bootstrapping: FLTrust scores every update against the server's own root-data update."""

from __future__ import annotations

import numpy as np

from strategies import _math
from strategies.base import Aggregate, Counts, EmptyState, MemorylessRule, Updates
from strategies.registries import aggregator


def fltrust(updates: Updates, reference: Aggregate) -> Aggregate:
    """Trust-weighted mean of the updates rescaled to ``||g_0||`` (see :class:`FLTrust`)."""
    norms = np.sqrt(_math.squared_norms(updates))
    reference_norm = float(np.linalg.norm(reference.astype(np.float64)))
    live = norms > 0.0
    trust = np.zeros_like(norms)
    if reference_norm > 0.0:
        cosine = _math.inner_products(updates, reference)[live] / (norms[live] * reference_norm)
        trust[live] = np.maximum(cosine, 0.0)
    total = trust.sum()
    if total == 0.0:
        return np.zeros(updates.shape[1], dtype=updates.dtype)
    weights = np.zeros_like(norms)
    weights[live] = trust[live] * reference_norm / (norms[live] * total)
    return _math.mix(weights, updates)


@aggregator("fltrust", kind="trust", needs="defense.root_size >= 1")
class FLTrust(MemorylessRule):
    r"""FLTrust: updates rescaled to the server's own update and weighted by their ReLU cosine
    with it.

    .. math::

        \bar x = \frac{\sum_i \mathrm{TS}_i \, \frac{\lVert g_0 \rVert}{\lVert x_i \rVert}\, x_i}
        {\sum_j \mathrm{TS}_j}, \qquad
        \mathrm{TS}_i = \max\!\left(0, \frac{\langle x_i, g_0 \rangle}
        {\lVert x_i \rVert \, \lVert g_0 \rVert}\right)

    with :math:`g_0` the server's own update this round (``reference=``: the global model
    trained on the server's small clean root dataset with the clients' training settings).

    Parameters
    ----------
    None
        The root dataset (``defense.root_size``) is the server's business.

    Returns
    -------
    ndarray, shape (n_params,)
        The aggregate, in the dtype of the updates; zero (the global model is kept) when every
        trust score is 0 or :math:`g_0 = 0`.

    Notes
    -----
    Every update is rescaled to :math:`\lVert g_0 \rVert`, so no client wins by magnitude,
    and one pointing away from :math:`g_0` gets weight 0. Bound: none on n; the guarantee
    rests on the root dataset being clean and representative. The server learning rate alpha
    of the paper is 1 here (updates are already model deltas). A zero update has no direction
    and gets trust 0; the authors' ``+1e-9`` guards are replaced by exact zero tests, so the
    rule stays scale invariant. Example counts are ignored.

    References
    ----------
    .. [1] Cao, Fang, Liu, Gong 2021, "FLTrust: Byzantine-robust Federated Learning via Trust
       Bootstrapping", NDSS.

    Examples
    --------
    >>> import numpy as np, strategies
    >>> rule = strategies.get_aggregator("fltrust")
    >>> x = np.array([[3.0, 4.0], [1.0, 0.0], [-1.0, 0.0]])  # cos 0.6, 1 and < 0 with g0
    >>> rule(x, np.ones(3, dtype=np.int64), reference=np.array([1.0, 0.0]))
    array([0.85, 0.3 ])
    """

    bound = "none (a clean server root dataset)"
    needs_reference = True

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: EmptyState,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, EmptyState]:
        assert reference is not None  # the chain checks it for a rule that needs_reference
        return fltrust(updates, reference), state

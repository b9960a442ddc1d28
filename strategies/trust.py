"""Trust bootstrapping: FLTrust scores every update against the server's own root-data update."""

from __future__ import annotations

import numpy as np

from strategies import _math
from strategies.base import Aggregate, Counts, RuleParams, Updates
from strategies.registries import AGGREGATORS


class FLTrustParams(RuleParams):
    """FLTrust has no tunable parameter: the root dataset (its size) is the server's business."""

    bound = "none (a clean server root dataset)"
    needs_reference = True


@AGGREGATORS.register("fltrust", FLTrustParams, kind="trust", needs="defense.root_size >= 1")
def fltrust(updates: Updates, num_examples: Counts, *, reference: Aggregate) -> Aggregate:
    """FLTrust: ``sum_i TS_i (||g_0|| / ||x_i||) x_i / sum_j TS_j`` with the trust score
    ``TS_i = ReLU(cos(x_i, g_0)) = max(0, <x_i, g_0> / (||x_i|| ||g_0||))``, ``g_0`` the
    server's own update this round (``reference``: the global model trained on the server's
    small clean root dataset with the clients' training settings).

    Cao, Fang, Liu, Gong 2021, "FLTrust: Byzantine-robust Federated Learning via Trust
    Bootstrapping" (NDSS). Every update is rescaled to ``||g_0||``, so no client can win by
    magnitude, and one pointing away from ``g_0`` gets weight 0. Bound: none on n; the
    guarantee rests on the root dataset being clean and representative. The server learning
    rate alpha of the paper is 1 here (updates are already model deltas). A zero update has no
    direction and gets trust 0. When every trust score is 0 (or ``g_0 = 0``) the aggregate is
    zero, i.e. the global model is kept, as in the authors' code (their ``+1e-9`` guards are
    replaced by exact zero tests so the rule stays scale invariant). Example counts are ignored.
    """
    del num_examples  # robust rules do not trust self-reported counts
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

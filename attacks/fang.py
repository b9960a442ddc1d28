"""Fang et al. 2020's full-knowledge local model poisoning, both of its constructions.

``honest`` is ``(h, d)``, ``c = num_malicious``, ``n = h + c``. Every update is a delta, so the
paper's "model before the attack" ``w_Re`` is the origin here.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from attacks._maths import F64, aggregate_with, squared_distances, tile_rows
from attacks.base import Aggregator, Counts, ThreatModel, Updates
from attacks.forging import CollusionAttack, Forgery, RoundView
from attacks.registry import register_attack
from common.registry import Params


class FangParams(Params):
    """Which rule the attack is crafted for, the search threshold and Fang's range factor b."""

    variant: Literal["krum", "trimmed_mean"] = "krum"
    threshold: float = Field(1e-5, gt=0.0)
    """Krum variant: stop halving lambda below this."""
    b: float = Field(2.0, gt=1.0)
    """Trimmed-mean variant: values are drawn within a factor b of the honest extremes."""


def krum_lambda_bound(honest: Updates, num_malicious: int) -> float:
    """Fang et al.'s upper bound on lambda (full knowledge, Krum attack), in delta space.

    ``lambda <= 1 / ((n - 2c - 1) sqrt(d)) * min_i sum_{l in G_i} ||h_l - h_i||
    + 1 / sqrt(d) * max_i ||h_i||`` with ``G_i`` the ``n - c - 2`` honest updates nearest to
    ``h_i``. Outside Krum's bound ``n >= 2c + 3``, where the paper's counts are not positive,
    both counts are clamped to at least 1 (and the neighbour count to ``h - 1``).
    """
    h, d = honest.shape
    n = h + num_malicious
    neighbours = min(max(n - num_malicious - 2, 1), h - 1)
    distances = np.sqrt(np.sort(squared_distances(honest, honest), axis=1))
    # Column 0 of each sorted row is the update's zero distance to itself.
    spread = float(distances[:, 1 : neighbours + 1].sum(axis=1).min()) if neighbours > 0 else 0.0
    denominator = max(n - 2 * num_malicious - 1, 1)
    largest = float(np.sqrt(np.einsum("ij,ij->i", honest, honest, dtype=np.float64)).max())
    return (spread / denominator + largest) / math.sqrt(d)


def aligned_fraction(aggregate: F64, direction: F64) -> float:
    """Fraction of the coordinates the round moves (``s != 0``) that ``aggregate`` moves by -s."""
    moved = direction != 0
    if not moved.any():
        return 0.0
    return float(np.mean(np.sign(aggregate[moved]) == -direction[moved]))


@register_attack("fang", FangParams)
class Fang(CollusionAttack[FangParams]):
    r"""Local model poisoning, full knowledge (Fang, Cao, Jia & Gong 2020, USENIX Security).

    With :math:`s = \operatorname{sign}(\mu)` the direction the round would move each
    coordinate, the paper has one construction per family of rules:

    * ``krum`` (the paper's attack on Krum, also applied to Bulyan): every colluder sends

      .. math:: \tilde u = -\lambda s

      with lambda starting at :func:`krum_lambda_bound` and halved until the deployed rule
      selects the forgery or ``lambda < threshold`` (the paper's stop rule; the last lambda is
      sent). "Selects" is checked on the deployed rule's output: it moves every coordinate
      with ``s_k != 0`` by ``-s_k`` (for Krum: it is the crafted update). The paper places the
      c - 1 supporters within epsilon of the crafted one; like FLPoison we send identical copies.
    * ``trimmed_mean`` (the paper's attack on trimmed mean and median): with
      :math:`w_{max}, w_{min}` the honest coordinate-wise extremes, each value is drawn uniformly
      beyond the extreme opposite to ``s``, within a factor ``b``:

      .. math::

          \tilde u_k \sim U[w_{max,k},\, b\,w_{max,k}]\ (s_k=-1, w_{max,k}>0),\quad
          U[w_{min,k}/b,\, w_{min,k}]\ (s_k \ge 0, w_{min,k}>0)

      (dividing instead of multiplying by ``b`` when the extreme is <= 0), independently per
      colluder and coordinate.

    The Krum construction against a rule that never selects it (FedAvg, median, trimmed mean)
    halves lambda to about ``threshold``: the colluders then send an almost-zero update. The
    forgery says so in its warning, and its diagnostics record every round's ``lambda`` and
    ``selected`` (1 or 0).

    Parameters
    ----------
    variant : {"krum", "trimmed_mean"}, default "krum"
        Which of the paper's constructions.
    threshold : float, default 1e-5
        Krum variant: the smallest lambda tried.
    b : float, default 2.0
        Trimmed-mean variant: the range factor, > 1.

    Returns
    -------
    Forgery
        ``(c, d)`` forged updates; diagnostics ``aligned_fraction`` (coordinates the deployed
        rule's output moves by ``-s``), ``forged_norm``, ``honest_mean_norm``, and for ``krum``
        ``lambda``, ``lambda_bound`` and ``selected``; a warning when ``krum`` is never selected.

    References
    ----------
    Fang, Cao, Jia & Gong, "Local Model Poisoning Attacks to Byzantine-Robust Federated
    Learning", USENIX Security 2020: the full-knowledge Krum and trimmed-mean attacks.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import RoundView, get_attack
    >>> honest = np.array([[1.0, 1.0], [1.2, 0.8], [0.8, 1.2], [1.0, 0.9], [0.9, 1.0]])
    >>> def median(updates, counts):
    ...     return np.median(updates, axis=0)
    >>> view = RoundView(own=np.zeros((2, 2)), num_clients=7, rng=np.random.default_rng(0),
    ...                  honest=honest, honest_num_examples=np.ones(5, dtype=np.int64),
    ...                  aggregator=median)
    >>> forgery = get_attack("fang").forge(view)
    >>> forgery.diagnostics["selected"], forgery.warning is not None
    (0.0, True)
    >>> forgery = get_attack("fang", variant="trimmed_mean").forge(view)
    >>> bool((forgery.updates < 0.8).all())
    True
    """

    threat_model = ThreatModel.OMNISCIENT

    def _forge(self, view: RoundView) -> Forgery:
        honest, counts = view.known_honest()
        aggregator = view.known_aggregator()
        direction = np.sign(honest.astype(np.float64).mean(axis=0))
        diagnostics: dict[str, float] = {}
        warning = None
        if self.params.variant == "trimmed_mean":
            forged = self._trimmed_mean(honest, direction, view.num_malicious, view.rng)
        else:
            forged, diagnostics = self._krum(honest, counts, aggregator, view, direction)
            if not diagnostics["selected"]:
                warning = (
                    f"fang (variant krum): the deployed rule never selected the forgery; lambda "
                    f"fell to {diagnostics['lambda']:.3g} (< threshold {self.params.threshold:g}) "
                    "and the colluders send an almost-zero update; the paper's Krum attack "
                    "targets Krum and Bulyan: try variant = 'trimmed_mean' against "
                    "coordinate-wise rules"
                )
        aggregate = aggregate_with(aggregator, honest, counts, forged)
        diagnostics.update(
            aligned_fraction=aligned_fraction(aggregate, direction),
            forged_norm=float(np.linalg.norm(forged[0])),
            honest_mean_norm=float(np.linalg.norm(honest.astype(np.float64).mean(axis=0))),
        )
        return Forgery(forged, diagnostics, warning)

    def _krum(
        self,
        honest: Updates,
        counts: Counts,
        aggregator: Aggregator,
        view: RoundView,
        direction: F64,
    ) -> tuple[F64, dict[str, float]]:
        """``c`` copies of ``-lambda * s`` and the search's ``lambda``/``selected`` record."""
        bound = krum_lambda_bound(honest, view.num_malicious)
        lam = bound
        while True:
            forged = tile_rows(-lam * direction, view.num_malicious)
            out = aggregate_with(aggregator, honest, counts, forged)
            selected = aligned_fraction(out, direction) == 1.0
            if selected or lam < self.params.threshold:
                record = {"lambda": lam, "lambda_bound": bound, "selected": float(selected)}
                return forged, record
            lam /= 2.0

    def _trimmed_mean(
        self, honest: Updates, direction: F64, num_malicious: int, rng: np.random.Generator
    ) -> F64:
        data = honest.astype(np.float64)
        w_max, w_min, b = data.max(axis=0), data.min(axis=0), self.params.b
        # Where the round decreases a coordinate (s = -1) push it up past the honest maximum,
        # elsewhere push it down past the honest minimum; b widens the range away from w.
        up_high = np.where(w_max > 0, b * w_max, w_max / b)
        down_low = np.where(w_min > 0, w_min / b, b * w_min)
        low = np.where(direction < 0, w_max, down_low)
        high = np.where(direction < 0, up_high, w_min)
        return rng.uniform(low, high, size=(num_malicious, data.shape[1]))

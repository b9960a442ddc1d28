"""Colluding clients that shift the mean: ALIE and IPM.

``honest`` is ``(h, d)``; ``m`` colluders; ``n = h + m`` clients in the round. Every colluder
sends the same forged vector, which is what the papers do.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from attacks._maths import F64, ZFormula, alie_z, mean_and_std, tile_rows
from attacks.base import ThreatModel, Updates
from attacks.forging import CollusionAttack, Forgery, RoundView
from attacks.registry import register_attack
from common.registry import Params


def alie_vector(updates: Updates, z: float) -> F64:
    """``mean - z * std`` per coordinate of ``updates`` (std with ddof=0)."""
    mean, std = mean_and_std(updates)
    return mean - z * std


def ipm_vector(honest: Updates, epsilon: float) -> F64:
    """``-epsilon * mean(honest)`` (Xie et al. 2019)."""
    mean: F64 = honest.astype(np.float64).mean(axis=0)
    return -epsilon * mean


class AlieParams(Params):
    """How z is chosen, and whose updates estimate the mean and deviation."""

    z_formula: ZFormula = "baruch"
    z: float | None = None
    """Explicit z; overrides ``z_formula`` when set."""
    knowledge: Literal["honest_updates", "own_data"] = "honest_updates"
    """``honest_updates``: the round's honest updates; ``own_data``: the colluders' own."""


@register_attack("alie", AlieParams)
class Alie(CollusionAttack[AlieParams]):
    r"""A Little Is Enough (Baruch, Baruch & Goldberg 2019, NeurIPS).

    Every colluder sends the coordinate-wise mean moved ``z`` standard deviations:

    .. math::

        \tilde u = \mu - z\,\sigma,\qquad z = \Phi^{-1}(p),\qquad
        s = \lfloor n/2 + 1 \rfloor - m

    with ``p = (n - s) / n`` (``baruch``, the paper's Algorithm 1) or
    ``p = (n - m - s) / (n - m)`` (``blades``: Blades, FLPoison, epfml). ``mu`` and ``sigma``
    (ddof=0) come from the round's honest updates (``knowledge = "honest_updates"``, threat model
    ``honest_updates``) or from the colluders' own honestly trained updates (``"own_data"``,
    threat model ``none``): the paper's non-omniscient setting, and what its authors' code does.

    Parameters
    ----------
    z_formula : {"baruch", "blades"}, default "baruch"
        Which published formula gives z.
    z : float, optional
        Explicit z; overrides ``z_formula``.
    knowledge : {"honest_updates", "own_data"}, default "honest_updates"
        Whose updates estimate ``mu`` and ``sigma``.

    Returns
    -------
    Forgery
        ``m`` copies of the vector; diagnostics ``z``; a warning when ``z <= 0`` (the forgery
        does not move away from the mean) or when the estimate has no spread (one colluder
        under ``own_data``: it sends its own honest update).

    References
    ----------
    Baruch, Baruch & Goldberg, "A Little Is Enough: Circumventing Defenses for Distributed
    Learning", NeurIPS 2019. Golden z: n=20, m=8 -> 1.036 (baruch) / 0.674 (blades).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import RoundView, get_attack
    >>> honest = np.array([[1.0, 2.0], [3.0, 6.0]])
    >>> view = RoundView(own=np.zeros((2, 2)), num_clients=4, rng=np.random.default_rng(0),
    ...                  honest=honest, honest_num_examples=np.array([5, 5]))
    >>> get_attack("alie", z=1.5).forge(view).updates
    array([[0.5, 1. ],
           [0.5, 1. ]])
    """

    def __init__(self, params: AlieParams) -> None:
        super().__init__(params)
        if params.knowledge == "own_data":
            self.threat_model = ThreatModel.NONE

    def z_for(self, *, num_clients: int, num_malicious: int) -> float:
        """The z for a round of ``num_clients`` clients, ``num_malicious`` of them malicious."""
        if self.params.z is not None:
            return self.params.z
        return alie_z(num_clients, num_malicious, self.params.z_formula)

    def _forge(self, view: RoundView) -> Forgery:
        z = self.z_for(num_clients=view.num_clients, num_malicious=view.num_malicious)
        estimate = view.own if self.threat_model is ThreatModel.NONE else view.known_honest()[0]
        _, std = mean_and_std(estimate)
        warning = None
        if z <= 0:
            warning = (
                f"alie: z = {z:.4f} <= 0 (n={view.num_clients}, m={view.num_malicious}); the "
                "forged update does not move away from the mean"
            )
        elif not std.any():
            warning = (
                f"alie: the {self.params.knowledge} estimate of {estimate.shape[0]} update(s) has "
                "zero deviation; the colluders send the mean unchanged"
            )
        return Forgery(tile_rows(alie_vector(estimate, z), view.num_malicious), {"z": z}, warning)


class IpmParams(Params):
    """``epsilon`` > 0, the inner-product manipulation factor."""

    epsilon: float = Field(0.5, gt=0.0)


@register_attack("ipm", IpmParams)
class Ipm(CollusionAttack[IpmParams]):
    r"""Inner Product Manipulation (Xie, Koyejo & Gupta 2019, "Fall of Empires", UAI).

    .. math::

        \tilde u = -\varepsilon\,\frac{1}{h}\sum_{i=1}^{h} u_i

    A small epsilon keeps the update close to the honest ones yet makes the inner product of
    the aggregate with the true gradient negative. ByzFL's ``InnerProductManipulation`` is the
    same with ``tau = epsilon`` (default 2.0).

    Parameters
    ----------
    epsilon : float, default 0.5
        The factor, > 0.

    Returns
    -------
    Forgery
        ``m`` copies of the vector; diagnostics ``epsilon``.

    References
    ----------
    Xie, Koyejo & Gupta, "Fall of Empires: Breaking Byzantine-tolerant SGD by Inner Product
    Manipulation", UAI 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import RoundView, get_attack
    >>> view = RoundView(own=np.zeros((1, 2)), num_clients=3, rng=np.random.default_rng(0),
    ...                  honest=np.array([[1.0, 2.0], [3.0, 6.0]]),
    ...                  honest_num_examples=np.array([5, 5]))
    >>> get_attack("ipm", epsilon=0.5).forge(view).updates
    array([[-1., -2.]])
    """

    def _forge(self, view: RoundView) -> Forgery:
        honest, _ = view.known_honest()
        vector = ipm_vector(honest, self.params.epsilon)
        return Forgery(tile_rows(vector, view.num_malicious), {"epsilon": self.params.epsilon})

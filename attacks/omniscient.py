"""ByzFL's optimised ALIE and IPM (threat model ``omniscient``): the factor is chosen by running
the deployed aggregation rule on candidate forgeries.

``honest`` is ``(h, d)``, ``c = num_malicious``. Fang et al.'s attack is in :mod:`attacks.fang`.
"""

from __future__ import annotations

from abc import abstractmethod

from pydantic import Field

from attacks._maths import F64, aggregate_with, distance_from_mean, line_maximize, tile_rows
from attacks.base import ThreatModel, Updates
from attacks.collusion import alie_vector, ipm_vector
from attacks.forging import CollusionAttack, Forgery, RoundView
from attacks.registry import register_attack
from common.registry import Params


class OptimalParams(Params):
    """ByzFL's line-search settings (their defaults)."""

    evals: int = Field(20, ge=1)
    start: float = Field(0.0, ge=0.0)
    delta: float = Field(10.0, gt=0.0)
    ratio: float = Field(0.8, gt=0.5, lt=1.0)


class _OptimalAttack(CollusionAttack[OptimalParams]):
    """A base attack whose factor tau is chosen to maximise ``||agg - mean(honest)||``."""

    threat_model = ThreatModel.OMNISCIENT

    @staticmethod
    @abstractmethod
    def vector(honest: Updates, tau: float) -> F64:
        """The base attack's forged vector for factor ``tau``."""

    def best_tau(self, view: RoundView) -> tuple[float, float]:
        """ByzFL's expansion/contraction line search: the best tau and its damage."""
        honest, counts = view.known_honest()
        aggregator = view.known_aggregator()

        def damage(tau: float) -> float:
            forged = tile_rows(self.vector(honest, tau), view.num_malicious)
            return distance_from_mean(aggregate_with(aggregator, honest, counts, forged), honest)

        p = self.params
        tau = line_maximize(damage, start=p.start, delta=p.delta, evals=p.evals, ratio=p.ratio)
        return tau, damage(tau)

    def _forge(self, view: RoundView) -> Forgery:
        tau, damage = self.best_tau(view)
        warning = (
            f"{type(self).__name__}: no probed tau moves the aggregate further than tau = "
            f"{self.params.start:g}; try a smaller attack.params.delta"
            if tau == self.params.start
            else None
        )
        forged = tile_rows(self.vector(view.known_honest()[0], tau), view.num_malicious)
        return Forgery(forged, {"tau": tau, "damage": damage}, warning)


@register_attack("optimal_alie", OptimalParams)
class OptimalAlie(_OptimalAttack):
    r"""ByzFL's ``Optimal_ALittleIsEnough`` (Allouah et al. 2023, AISTATS, "Fixing by mixing").

    .. math::

        \tilde u = \mu - \tau\,\sigma,\qquad
        \tau = \arg\max_\tau \|F(u_1..u_h, \tilde u \times c) - \mu\|_2

    with ``F`` the deployed rule and tau from ByzFL's line search (our ALIE sign; ByzFL adds
    ``+tau * std`` with ddof=1). The forged rows get the median honest example count.

    Parameters
    ----------
    evals : int, default 20
        Evaluations of the deployed rule, the start included.
    start : float, default 0.0
        First tau probed.
    delta : float, default 10.0
        First step; doubled while the damage grows, then multiplied by ``ratio``.
    ratio : float, default 0.8
        Step contraction, in (0.5, 1).

    Returns
    -------
    Forgery
        ``c`` copies; diagnostics ``tau`` and ``damage``; a warning when no probe beat ``start``.

    References
    ----------
    Allouah et al., "Fixing by Mixing: A Recipe for Optimal Byzantine ML under Heterogeneity",
    AISTATS 2023; ByzFL's ``Optimal_ALittleIsEnough``.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import RoundView, get_attack
    >>> honest = np.array([[0.0, 1.0], [2.0, 3.0]])
    >>> view = RoundView(own=np.zeros((1, 2)), num_clients=3, rng=np.random.default_rng(0),
    ...                  honest=honest, honest_num_examples=np.array([1, 1]),
    ...                  aggregator=lambda u, c: u.mean(axis=0))
    >>> forgery = get_attack("optimal_alie", evals=3, delta=1.0).forge(view)
    >>> forgery.diagnostics["tau"], forgery.updates
    (3.0, array([[-2., -1.]]))
    """

    @staticmethod
    def vector(honest: Updates, tau: float) -> F64:
        return alie_vector(honest, tau)


@register_attack("optimal_ipm", OptimalParams)
class OptimalIpm(_OptimalAttack):
    r"""ByzFL's ``Optimal_InnerProductManipulation`` (Allouah et al. 2023, AISTATS).

    .. math::

        \tilde u = -\tau\,\mu,\qquad
        \tau = \arg\max_\tau \|F(u_1..u_h, \tilde u \times c) - \mu\|_2

    with tau from the same line search as :class:`OptimalAlie`.

    Parameters
    ----------
    evals : int, default 20
        As :class:`OptimalAlie`.
    start : float, default 0.0
        As :class:`OptimalAlie`.
    delta : float, default 10.0
        As :class:`OptimalAlie`.
    ratio : float, default 0.8
        As :class:`OptimalAlie`.

    Returns
    -------
    Forgery
        ``c`` copies; diagnostics ``tau`` and ``damage``; a warning when no probe beat ``start``.

    References
    ----------
    Allouah et al., AISTATS 2023; ByzFL's ``Optimal_InnerProductManipulation``.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import RoundView, get_attack
    >>> view = RoundView(own=np.zeros((1, 2)), num_clients=3, rng=np.random.default_rng(0),
    ...                  honest=np.array([[1.0, 1.0], [1.0, 3.0]]),
    ...                  honest_num_examples=np.array([1, 1]),
    ...                  aggregator=lambda u, c: np.median(u, axis=0))
    >>> get_attack("optimal_ipm", evals=3, delta=1.0).forge(view).diagnostics["tau"]
    0.0
    """

    @staticmethod
    def vector(honest: Updates, tau: float) -> F64:
        return ipm_vector(honest, tau)

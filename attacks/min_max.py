"""Min-Max and Min-Sum (Shejwalkar & Houmansadr 2021): the furthest forgery that stays as close
to the honest updates as they are to each other."""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal

import numpy as np
from pydantic import Field

from attacks._maths import F64, halving_search, mean_and_std, squared_distances, tile_rows
from attacks.base import Updates
from attacks.forging import CollusionAttack, Forgery, RoundView
from attacks.registry import register_attack
from common.registry import Params

Perturbation = Literal["unit_vec", "sign", "std"]


class MinMaxParams(Params):
    """Perturbation direction and the halving search's start and stop threshold."""

    perturbation: Perturbation = "unit_vec"
    gamma_init: float = Field(10.0, gt=0.0)
    threshold: float = Field(1e-5, gt=0.0)


def perturbation_vector(honest: Updates, kind: Perturbation) -> F64:
    """Shejwalkar & Houmansadr's ``grad^p``, with the minus folded in (``mal = mean + g * p``).

    ``unit_vec``: ``-mean / ||mean||`` (zero if the mean is zero); ``sign``: ``-sign(mean)``;
    ``std``: ``-std`` (ddof=0).
    """
    mean, std = mean_and_std(honest)
    if kind == "unit_vec":
        norm = float(np.linalg.norm(mean))
        return -mean / norm if norm > 0 else np.zeros_like(mean)
    if kind == "sign":
        return -np.sign(mean)
    return -std


class _MinAttack(CollusionAttack[MinMaxParams]):
    """Shared body of Min-Max and Min-Sum: ``mal = mean + gamma * p``, gamma by halving search."""

    @staticmethod
    @abstractmethod
    def _scores(distances: F64) -> F64:
        """Per-row score of a ``(rows, h)`` squared-distance matrix, compared with the bound."""

    def forged_and_gamma(self, honest: Updates) -> tuple[F64, float]:
        """The forged vector ``mean + gamma * p`` and the gamma the halving search found."""
        mean, _ = mean_and_std(honest)
        direction = perturbation_vector(honest, self.params.perturbation)
        bound = float(self._scores(squared_distances(honest, honest)).max())

        def feasible(gamma: float) -> bool:
            forged = (mean + gamma * direction)[None, :]
            return float(self._scores(squared_distances(forged, honest))[0]) <= bound

        gamma = halving_search(
            feasible, gamma_init=self.params.gamma_init, threshold=self.params.threshold
        )
        return mean + gamma * direction, gamma

    def _forge(self, view: RoundView) -> Forgery:
        forged, gamma = self.forged_and_gamma(view.known_honest()[0])
        warning = (
            f"{type(self).__name__}: no gamma > 0 keeps the forgery within the honest spread; "
            "the colluders send the honest mean"
            if gamma == 0.0
            else None
        )
        return Forgery(tile_rows(forged, view.num_malicious), {"gamma": gamma}, warning)


@register_attack("min_max", MinMaxParams)
class MinMax(_MinAttack):
    r"""Min-Max (Shejwalkar & Houmansadr 2021, NDSS, "Manipulating the Byzantine").

    .. math::

        \tilde u = \mu + \gamma\,p,\qquad
        \gamma = \max\{\gamma : \max_i \|\tilde u - u_i\| \le \max_{i,j} \|u_i - u_j\|\}

    found by the paper's halving search from ``gamma_init`` down to ``threshold``: the forgery is
    no further from any honest update than the two most distant honest updates are.

    Parameters
    ----------
    perturbation : {"unit_vec", "sign", "std"}, default "unit_vec"
        ``p``: ``-mu / ||mu||``, ``-sign(mu)`` or ``-sigma``.
    gamma_init : float, default 10.0
        Start of the search (its probes never exceed ``2 * gamma_init``).
    threshold : float, default 1e-5
        The search stops when successive gammas differ by at most this.

    Returns
    -------
    Forgery
        ``m`` copies; diagnostics ``gamma``; a warning when ``gamma = 0`` (the honest mean).

    References
    ----------
    Shejwalkar & Houmansadr, "Manipulating the Byzantine: Optimizing Model Poisoning Attacks and
    Defenses for Federated Learning", NDSS 2021, Algorithm 1.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import RoundView, get_attack
    >>> honest = np.array([[0.0, 0.0], [4.0, 0.0], [1.0, 0.0]])
    >>> view = RoundView(own=np.zeros((1, 2)), num_clients=4, rng=np.random.default_rng(0),
    ...                  honest=honest, honest_num_examples=np.array([1, 1, 1]))
    >>> forgery = get_attack("min_max").forge(view)
    >>> round(forgery.diagnostics["gamma"], 3)  # 7/3 + gamma <= 4
    1.667
    """

    @staticmethod
    def _scores(distances: F64) -> F64:
        scores: F64 = distances.max(axis=1)
        return scores


@register_attack("min_sum", MinMaxParams)
class MinSum(_MinAttack):
    r"""Min-Sum (Shejwalkar & Houmansadr 2021, NDSS).

    .. math::

        \tilde u = \mu + \gamma\,p,\qquad
        \gamma = \max\{\gamma : \textstyle\sum_i \|\tilde u - u_i\|^2
        \le \max_i \sum_j \|u_i - u_j\|^2\}

    the same search as Min-Max: the forgery's total squared distance to the honest updates is
    no larger than any honest update's.

    Parameters
    ----------
    perturbation : {"unit_vec", "sign", "std"}, default "unit_vec"
        As :class:`MinMax`.
    gamma_init : float, default 10.0
        As :class:`MinMax`.
    threshold : float, default 1e-5
        As :class:`MinMax`.

    Returns
    -------
    Forgery
        ``m`` copies; diagnostics ``gamma``; a warning when ``gamma = 0``.

    References
    ----------
    Shejwalkar & Houmansadr, NDSS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import RoundView, get_attack
    >>> honest = np.array([[0.0, 0.0], [4.0, 0.0], [1.0, 0.0]])
    >>> view = RoundView(own=np.zeros((1, 2)), num_clients=4, rng=np.random.default_rng(0),
    ...                  honest=honest, honest_num_examples=np.array([1, 1, 1]))
    >>> round(get_attack("min_sum").forge(view).diagnostics["gamma"], 3)  # 26/3 + 3 g^2 <= 25
    2.333
    """

    @staticmethod
    def _scores(distances: F64) -> F64:
        scores: F64 = distances.sum(axis=1)
        return scores

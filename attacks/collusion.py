"""Colluding clients that see the honest updates of the round (threat model ``honest_updates``).

``honest`` is ``(h, d)``; ``m = num_malicious``; ``n = h + m`` is the number of clients in the
round. Every attack here sends the same forged vector from all m malicious clients (Mimic sends
one honest update), which is what the papers do.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from attacks._maths import (
    F64,
    ZFormula,
    alie_z,
    halving_search,
    mean_and_std,
    squared_distances,
    tile_rows,
)
from attacks.base import Aggregator, CollusionAttack, Counts, Updates
from attacks.registry import register_attack
from common.errors import ConfigError
from common.registry import Params


def alie_vector(honest: Updates, z: float) -> F64:
    """``mean - z * std`` per coordinate (Baruch et al. 2019; std with ddof=0)."""
    mean, std = mean_and_std(honest)
    return mean - z * std


def ipm_vector(honest: Updates, epsilon: float) -> F64:
    """``-epsilon * mean(honest)`` (Xie et al. 2019)."""
    mean: F64 = honest.astype(np.float64).mean(axis=0)
    return -epsilon * mean


class AlieParams(Params):
    """How z is chosen: one of the two published formulas, or an explicit ``z``."""

    z_formula: ZFormula = "baruch"
    z: float | None = None
    """Explicit z; overrides ``z_formula`` when set."""


@register_attack("alie", AlieParams)
class Alie(CollusionAttack[AlieParams]):
    """A Little Is Enough (Baruch, Baruch & Goldberg 2019, NeurIPS).

    ``malicious = mean - z * std`` per coordinate over the honest updates, ``z = Phi^{-1}(p)``
    with ``s = floor(n/2 + 1) - m`` the supporters the attackers need:

    * ``z_formula = "baruch"``: ``p = (n - s) / n``, the paper's Algorithm 1.
    * ``z_formula = "blades"``: ``p = (n - m - s) / (n - m)``, used by Blades, FLPoison and
      Karimireddy et al.'s code (epfml/byzantine-robust-noniid-optimizer). ByzFL has no z
      formula: its ALIE takes a fixed ``tau = 1.5``. Blades, FLPoison and ByzFL add
      ``+z * std``; the paper and epfml subtract, as we do.

    Golden values: n=20, m=8 -> z = 1.036 (baruch) / 0.674 (blades); n=50, m=10 -> 0.468 / 0.253.
    A z <= 0 (few attackers under ``blades``) moves towards, not away from, the mean: warned.
    """

    def z_for(self, *, num_clients: int, num_malicious: int) -> float:
        """The z for a round of ``num_clients`` clients, ``num_malicious`` of them malicious."""
        z = self.params.z
        if z is None:
            z = alie_z(num_clients, num_malicious, self.params.z_formula)
        if z <= 0:
            warnings.warn(
                f"alie: z = {z:.4f} <= 0 (n={num_clients}, m={num_malicious}); the forged update "
                "does not move away from the honest mean",
                stacklevel=2,
            )
        return z

    def _forge(
        self,
        honest: Updates,
        *,
        num_malicious: int,
        rng: np.random.Generator,
        honest_num_examples: Counts,
        aggregator: Aggregator | None,
    ) -> NDArray[np.floating[Any]]:
        z = self.z_for(num_clients=honest.shape[0] + num_malicious, num_malicious=num_malicious)
        return tile_rows(alie_vector(honest, z), num_malicious)


class IpmParams(Params):
    """``epsilon`` > 0, the inner-product manipulation factor."""

    epsilon: float = Field(0.5, gt=0.0)


@register_attack("ipm", IpmParams)
class Ipm(CollusionAttack[IpmParams]):
    """Inner Product Manipulation (Xie, Koyejo & Gupta 2019, "Fall of Empires", UAI).

    ``malicious = -epsilon * mean(honest)``: a small epsilon keeps the update close to the honest
    ones yet makes the inner product of the aggregate with the true gradient negative.
    ByzFL's ``InnerProductManipulation`` is the same with ``tau = epsilon`` (default 2.0).
    """

    def _forge(
        self,
        honest: Updates,
        *,
        num_malicious: int,
        rng: np.random.Generator,
        honest_num_examples: Counts,
        aggregator: Aggregator | None,
    ) -> NDArray[np.floating[Any]]:
        return tile_rows(ipm_vector(honest, self.params.epsilon), num_malicious)


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

    def _forge(
        self,
        honest: Updates,
        *,
        num_malicious: int,
        rng: np.random.Generator,
        honest_num_examples: Counts,
        aggregator: Aggregator | None,
    ) -> NDArray[np.floating[Any]]:
        forged, _ = self.forged_and_gamma(honest)
        return tile_rows(forged, num_malicious)


@register_attack("min_max", MinMaxParams)
class MinMax(_MinAttack):
    """Min-Max (Shejwalkar & Houmansadr 2021, NDSS, "Manipulating the Byzantine").

    ``mal = mean + gamma * p`` with the largest gamma (halving search from ``gamma_init``, stop at
    ``threshold``) such that ``max_i ||mal - h_i|| <= max_{i,j} ||h_i - h_j||``: the forged update
    is no further from any honest update than the two most distant honest updates are.
    """

    @staticmethod
    def _scores(distances: F64) -> F64:
        scores: F64 = distances.max(axis=1)
        return scores


@register_attack("min_sum", MinMaxParams)
class MinSum(_MinAttack):
    """Min-Sum (Shejwalkar & Houmansadr 2021, NDSS).

    Same search as Min-Max with ``sum_i ||mal - h_i||^2 <= max_i sum_j ||h_i - h_j||^2``: the
    forged update's total squared distance to the honest ones is no larger than any honest
    update's.
    """

    @staticmethod
    def _scores(distances: F64) -> F64:
        scores: F64 = distances.sum(axis=1)
        return scores


class MimicParams(Params):
    """Which honest update to copy: the max-variance one, or a fixed position."""

    choice: Literal["max_variance", "fixed"] = "max_variance"
    index: int = Field(0, ge=0)
    """Position in the round's honest updates when ``choice = "fixed"``."""


def max_variance_row(honest: Updates) -> int:
    """Index of the honest update with the largest |projection| on the top principal direction.

    With ``X`` the centred honest updates and ``G = X X^T = U L U^T``, the projections of the
    rows on the first right singular vector are ``sqrt(l_1) * u_1``, so the argmax of ``|u_1|``
    is found from the small ``(h, h)`` Gram matrix instead of a ``(d, d)`` covariance.
    """
    data = honest.astype(np.float64)
    centred = data - data.mean(axis=0)
    _, vectors = np.linalg.eigh(centred @ centred.T)
    return int(np.argmax(np.abs(vectors[:, -1])))


@register_attack("mimic", MimicParams)
class Mimic(CollusionAttack[MimicParams]):
    """Mimic (Karimireddy, He & Jaggi 2022, ICLR): every malicious client copies one honest update.

    From "Byzantine-robust learning on heterogeneous datasets via bucketing".
    Over-representing one client's (non-IID) data biases the aggregate without any outlier.
    ``max_variance`` copies the honest update furthest along the top principal direction of this
    round's honest updates, by |projection| since an eigenvector's sign is arbitrary (the
    paper's code learns the direction online over warm-up rounds and takes the signed argmax;
    we recompute it each round, which needs no state). ``fixed`` copies honest update
    ``index`` (ByzFL's ``Mimic(epsilon)``, default 0). Honest order is the server's reply order.
    """

    def _forge(
        self,
        honest: Updates,
        *,
        num_malicious: int,
        rng: np.random.Generator,
        honest_num_examples: Counts,
        aggregator: Aggregator | None,
    ) -> NDArray[np.floating[Any]]:
        if self.params.choice == "max_variance":
            row = max_variance_row(honest)
        elif self.params.index < honest.shape[0]:
            row = self.params.index
        else:
            raise ConfigError(
                f"attack.params.index: got {self.params.index}; must be < the number of honest "
                f"updates in the round ({honest.shape[0]})"
            )
        return tile_rows(honest[row], num_malicious)

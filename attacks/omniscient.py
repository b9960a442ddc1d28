"""Aggregator-aware collusion (threat model ``omniscient``): the attackers may run the deployed
aggregation rule on candidate forgeries before choosing one.

``honest`` is ``(h, d)``, ``c = num_malicious``, ``n = h + c``. Every update is a delta, so the
papers' "model before the attack" ``w_Re`` is the origin here.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from attacks._maths import (
    F64,
    aggregate_with,
    distance_from_mean,
    line_maximize,
    squared_distances,
    tile_rows,
)
from attacks.base import Aggregator, CollusionAttack, Counts, ThreatModel, Updates
from attacks.collusion import alie_vector, ipm_vector
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


@register_attack("fang", FangParams)
class Fang(CollusionAttack[FangParams]):
    """Local model poisoning, full knowledge (Fang, Cao, Jia & Gong 2020, USENIX Security).

    ``s = sign(mean(honest))`` is the direction the round would move each coordinate.

    * ``krum``: every malicious client sends ``-lambda * s``. lambda starts at
      :func:`krum_lambda_bound` and is halved until the deployed rule's output is aligned with the
      malicious direction (``sign(agg_k) = -s_k`` wherever ``s_k != 0``; for Krum that is the
      paper's "Krum selects the crafted model") or lambda < ``threshold``, in which case the last
      lambda is used (as FLPoison does). The paper places the c - 1 supporters within epsilon of
      the crafted model; like FLPoison we send c identical copies.
    * ``trimmed_mean`` (the paper's trimmed-mean/median attack): with ``w_max, w_min`` the
      coordinate-wise honest max and min, each malicious value is drawn uniformly from
      ``[w_max, b w_max]`` (``w_max > 0``) or ``[w_max, w_max / b]`` (``w_max <= 0``; the paper
      writes ``[w_max / b, w_max]``, the same interval) where ``s_k = -1``, and from
      ``[w_min / b, w_min]`` (``w_min > 0``) or ``[b w_min, w_min]`` (``w_min <= 0``) where
      ``s_k >= 0`` (``s_k = 0`` is treated as an increase), independently per client and
      coordinate. Every value lies beyond the honest extreme, on the side opposite to ``s``.
    """

    threat_model = ThreatModel.OMNISCIENT

    def _forge(
        self,
        honest: Updates,
        *,
        num_malicious: int,
        rng: np.random.Generator,
        honest_num_examples: Counts,
        aggregator: Aggregator | None,
    ) -> NDArray[np.floating[Any]]:
        direction = np.sign(honest.astype(np.float64).mean(axis=0))
        if self.params.variant == "trimmed_mean":
            return self._trimmed_mean(honest, direction, num_malicious, rng)
        assert aggregator is not None  # forge() checked the omniscient threat model
        return tile_rows(
            self.krum_vector(honest, honest_num_examples, aggregator, num_malicious, direction),
            num_malicious,
        )

    def krum_vector(
        self,
        honest: Updates,
        honest_num_examples: Counts,
        aggregator: Aggregator,
        num_malicious: int,
        direction: F64,
    ) -> F64:
        """``-lambda * s`` with lambda from the halving search against ``aggregator``."""
        moved = direction != 0
        lam = krum_lambda_bound(honest, num_malicious)
        while True:
            crafted = -lam * direction
            out = aggregate_with(
                aggregator, honest, honest_num_examples, tile_rows(crafted, num_malicious)
            )
            if (
                np.array_equal(np.sign(out[moved]), -direction[moved])
                or lam < self.params.threshold
            ):
                return crafted
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

    def best_tau(
        self,
        honest: Updates,
        honest_num_examples: Counts,
        aggregator: Aggregator,
        num_malicious: int,
    ) -> float:
        """ByzFL's expansion/contraction line search (:func:`attacks._maths.line_maximize`)."""

        def damage(tau: float) -> float:
            forged = tile_rows(self.vector(honest, tau), num_malicious)
            return distance_from_mean(
                aggregate_with(aggregator, honest, honest_num_examples, forged), honest
            )

        p = self.params
        return line_maximize(damage, start=p.start, delta=p.delta, evals=p.evals, ratio=p.ratio)

    def _forge(
        self,
        honest: Updates,
        *,
        num_malicious: int,
        rng: np.random.Generator,
        honest_num_examples: Counts,
        aggregator: Aggregator | None,
    ) -> NDArray[np.floating[Any]]:
        assert aggregator is not None  # forge() checked the omniscient threat model
        tau = self.best_tau(honest, honest_num_examples, aggregator, num_malicious)
        return tile_rows(self.vector(honest, tau), num_malicious)


@register_attack("optimal_alie", OptimalParams)
class OptimalAlie(_OptimalAttack):
    """ByzFL's ``Optimal_ALittleIsEnough`` (Allouah et al. 2023, AISTATS, "Fixing by mixing").

    ``mean - tau * std`` (our ALIE sign; ByzFL adds ``+tau * std`` with ddof=1) with tau from
    ByzFL's line search maximising ``||agg(honest + c forged) - mean(honest)||_2``.
    """

    @staticmethod
    def vector(honest: Updates, tau: float) -> F64:
        return alie_vector(honest, tau)


@register_attack("optimal_ipm", OptimalParams)
class OptimalIpm(_OptimalAttack):
    """ByzFL's ``Optimal_InnerProductManipulation`` (Allouah et al. 2023, AISTATS).

    ``-tau * mean(honest)`` with tau from ByzFL's line search maximising
    ``||agg(honest + c forged) - mean(honest)||_2``.
    """

    @staticmethod
    def vector(honest: Updates, tau: float) -> F64:
        return ipm_vector(honest, tau)

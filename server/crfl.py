"""CRFL (Xie, Chen, Chen, Li 2021): the server's clipping and noise on the global model during
training, and the certified radius of the paper's Theorem 1 for a smoothed prediction.

Threat model of the certificate: R attackers poison a fraction q_B / n_B of their batches with a
backdoor pattern of L2 norm ``delta`` at round t_adv and boost their update by gamma; everyone
else is honest. Every round after aggregation the server clips the global model to norm rho_t
and adds Gaussian noise sigma; at round T the parameter-smoothed model (majority vote of noisy
copies, noise test_sigma) keeps its prediction on a test point for every pattern with
``||delta|| < RAD``. The radius depends on those assumed attack constants (``[crfl]``), not on
what the run's attack actually does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from common.crfl_config import CRFLConfig
from common.seeding import derive_rng

CERTIFY_KEYS = ("crfl_smoothed_accuracy", "crfl_certified_accuracy", "crfl_mean_radius")


def clip_and_noise(
    weights: Sequence[NDArray[np.float32]], rho: float, sigma: float, rng: np.random.Generator
) -> list[NDArray[np.float32]]:
    """``w min(1, rho / ||w||) + N(0, sigma^2 I)`` over all the model's parameters at once (the
    authors' ``clip_weight_norm``, then ``dp_noise`` on every parameter)."""
    norm = math.sqrt(sum(float(np.sum(np.square(w, dtype=np.float64))) for w in weights))
    scale = min(1.0, rho / norm) if norm > 0 else 1.0
    return [
        (w.astype(np.float64) * scale + rng.normal(0.0, sigma, size=w.shape)).astype(w.dtype)
        if sigma > 0
        else (w * np.float32(scale)).astype(w.dtype)
        for w in weights
    ]


class CRFLTraining:
    """The server's step after aggregation: clip to rho_t, add noise from the round's seed."""

    def __init__(self, config: CRFLConfig, seed: int) -> None:
        self.config = config
        self.seed = seed

    def apply(
        self, server_round: int, weights: Sequence[NDArray[np.float32]]
    ) -> list[NDArray[np.float32]]:
        """The global model of ``server_round`` after CRFL's clipping and noise."""
        rng = derive_rng(self.seed, "crfl", server_round)
        rho = self.config.clip_norm(server_round)
        return clip_and_noise(weights, rho, self.config.sigma, rng)


def contraction(config: CRFLConfig, server_round: int) -> float:
    """How much the clipping and noise of the rounds since the attack shrink its effect:
    ``prod_{t=t_adv+1}^{T-1} (2 Phi(rho_t / sigma) - 1) * (2 Phi(rho_T / test_sigma) - 1)``,
    a round without noise (sigma = 0) counting 1; ``2 Phi(x) - 1 = erf(x / sqrt 2)``."""
    product = 1.0
    for t in range(config.attack_round + 1, server_round):
        if config.sigma > 0:
            product *= math.erf(config.clip_norm(t) / config.sigma / math.sqrt(2.0))
    return product * math.erf(config.clip_norm(server_round) / config.test_sigma / math.sqrt(2.0))


def radius_scale(
    config: CRFLConfig, server_round: int, *, clients: int, learning_rate: float, local_steps: float
) -> float:
    r"""The denominator of Theorem 1, with uniform aggregation weights 1/N:

    .. math::

        2 R \tau^2 L_z^2 \Big(\sum_{i \le R} w_i^2\Big) \gamma^2 \eta^2 (q_B / n_B)^2
        \cdot \text{contraction}, \quad L_z = \sqrt{2 + 2 \rho_{t_{adv}} + \rho_{t_{adv}}^2}
    """
    rho_adv = config.clip_norm(config.attack_round)
    lipschitz_sq = 2.0 + 2.0 * rho_adv + rho_adv**2
    weights_sq = config.attackers / clients**2
    return (
        2.0
        * config.attackers
        * local_steps**2
        * lipschitz_sq
        * weights_sq
        * config.scale_factor**2
        * learning_rate**2
        * config.poison_fraction**2
        * contraction(config, server_round)
    )


def certified_radius(
    p_a: NDArray[np.float64], p_b: NDArray[np.float64], sigma: float, scale: float
) -> NDArray[np.float64]:
    r"""Theorem 1's radius for lower and upper bounds ``p_a``, ``p_b`` of the top two classes'
    vote fractions, with the training noise ``sigma`` (0 where ``p_a <= p_b``: abstain):

    .. math::

        \mathrm{RAD} = \sqrt{\frac{-\ln\!\left(1 - (\sqrt{p_A} - \sqrt{p_B})^2\right)
        \sigma^2}{\text{scale}}}

    >>> certified_radius(np.array([0.64]), np.array([0.04]), 1.0, -np.log(1 - 0.36))
    array([1.])
    """
    gap = np.sqrt(p_a) - np.sqrt(p_b)
    value = -np.log1p(-np.square(gap)) * sigma**2 / scale
    radius: NDArray[np.float64] = np.where(p_a > p_b, np.sqrt(np.maximum(value, 0.0)), 0.0)
    return radius


def certify_votes(
    votes: NDArray[np.int64], y: NDArray[np.int64], *, alpha: float, sigma: float, scale: float
) -> dict[str, float]:
    """The smoothed accuracy, the certified accuracy at radius 0 and the mean certified radius
    (0 for a point that is wrong or abstains) from ``votes[i, c]``, how many of the M noisy
    copies predict class c for test point i. The vote fractions are bounded with Hoeffding at
    level alpha: ``p_A = pA_hat - sqrt(ln(1/alpha) / 2M)``, ``p_B = pB_hat + sqrt(...)``."""
    copies = int(votes[0].sum())
    ranked = np.sort(votes, axis=1)
    margin = math.sqrt(math.log(1.0 / alpha) / (2.0 * copies))
    p_a = np.maximum(1e-8, ranked[:, -1] / copies - margin)
    p_b = np.minimum(1.0 - 1e-8, ranked[:, -2] / copies + margin)
    correct = np.argmax(votes, axis=1) == y
    radius = np.where(correct, certified_radius(p_a, p_b, sigma, scale), 0.0)
    certified = correct & (p_a > p_b)
    return {
        "crfl_smoothed_accuracy": float(np.mean(correct)),
        "crfl_certified_accuracy": float(np.mean(certified)),
        "crfl_mean_radius": float(np.mean(radius)),
    }

"""Scenario section ``[crfl]``: CRFL (Xie, Chen, Chen, Li 2021), certifiably robust FL against
backdoors.

Training: after every round's aggregation the server clips the global model's parameter norm to
``rho_t = min(clip_base + clip_growth t, clip_max)`` and adds ``N(0, sigma^2)`` to every parameter
(:mod:`server.crfl`). Certification: every ``every`` rounds (and the last) the server draws
``copies`` noisy copies of the global model (``N(0, test_sigma^2)`` per parameter), takes each
test point's majority vote, and reports the certified radius of the paper's Theorem 1 under the
threat model below (:mod:`server.crfl_probe`). Defaults are the authors' MNIST settings
(AI-secure/CRFL ``configs/mnist_params.yaml``, ``mnist_smooth_params.yaml``, ``main.py``).

This module imports no TensorFlow: the scenario schema loads it before any worker starts.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from common.errors import ConfigError
from common.validation import FieldError, Strict


class CRFLConfig(Strict):
    """The ``[crfl]`` table."""

    enabled: bool = False
    clip_base: float = Field(2.0, gt=0.0)
    """rho at round 0 of the clipping schedule (the authors' MNIST: ``0.1 t + 2``)."""
    clip_growth: float = Field(0.1, ge=0.0)
    """Growth of rho per round."""
    clip_max: float = Field(15.0, gt=0.0)
    """Cap of rho (the authors' ``param_clip_thres``)."""
    sigma: float = Field(0.01, ge=0.0)
    """Standard deviation of the training noise per parameter (``sigma_param``)."""
    every: int = Field(1, ge=0, le=10_000)
    """Certify every this many rounds (and the last); 0 certifies nothing."""
    copies: int = Field(1000, ge=2, le=100_000)
    """M: noisy copies of the global model per certification (``N_m``)."""
    test_sigma: float = Field(0.01, gt=0.0)
    """Standard deviation of the smoothing noise per parameter at certification."""
    alpha: float = Field(0.001, gt=0.0, lt=1.0)
    """Error tolerance of the Hoeffding bounds on the vote fractions."""
    num_examples: int = Field(0, ge=0)
    """Test examples certified (the first of a seeded permutation); 0 means all."""
    attackers: int = Field(1, ge=1)
    """R: attackers the certificate assumes (the authors' MNIST run has 2)."""
    scale_factor: float = Field(100.0, gt=0.0)
    """gamma: the attackers' boosting of their update (the authors' 100)."""
    poison_fraction: float = Field(0.05, gt=0.0, le=1.0)
    """q_B / n_B: poisoned fraction of an attacker's batch (the authors' 5 of 100)."""
    attack_round: int = Field(1, ge=1)
    """t_adv: the round the attackers poison (the authors' 70 of 100)."""

    @model_validator(mode="after")
    def _check_schedule(self) -> CRFLConfig:
        if self.clip_max < self.clip_base:
            raise FieldError(
                "crfl.clip_max", self.clip_max, f"must be >= crfl.clip_base ({self.clip_base})"
            )
        return self

    def clip_norm(self, server_round: int) -> float:
        """rho_t, the norm the global model of round ``server_round`` is clipped to."""
        return min(self.clip_base + self.clip_growth * server_round, self.clip_max)


def check_crfl(crfl: CRFLConfig, *, secure_aggregation: bool) -> None:
    """Refuse ``[crfl]`` where its server step cannot run: the SecAgg+ path has its own strategy,
    which never sees the aggregate in the clear."""
    if crfl.enabled and secure_aggregation:
        raise ConfigError(
            "crfl.enabled: got true; CRFL's clipping and noise run in the robust-aggregation "
            "path, not under secure_aggregation (turn one of them off)"
        )

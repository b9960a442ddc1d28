"""Scenario section ``[robustness]``: evasion testing, adversarial training and distillation.

* ``[robustness]`` itself: every ``every`` rounds the server attacks the global model with FGSM
  and PGD (L-infinity, radius ``epsilon``) on the test set and reports robust accuracy beside
  clean accuracy (:mod:`server.robustness`).
* ``[robustness.training]``: honest clients replace a fraction ``ratio`` of every local batch by
  adversarial examples generated against their current model (:mod:`common.learning.adversarial`).
* ``[robustness.distillation]``: after the last round the server distils the global model into
  a smaller student on server-side data (:mod:`server.distillation`).

This module imports no TensorFlow: the scenario schema loads it before any worker starts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from common.validation import FieldError, Strict


class Perturbation(Strict):
    """An L-infinity evasion attack: radius, PGD steps and step size, random start.

    FGSM (Goodfellow et al. 2015) takes one step of size ``epsilon``; PGD (Madry et al. 2018)
    takes ``steps`` steps of ``step_size`` and projects back into the ball after each.
    """

    epsilon: float = Field(0.1, gt=0.0, le=1.0)
    """Radius of the L-infinity ball, in input units (every dataset's pixels are in [0, 1])."""
    steps: int = Field(10, ge=1, le=1000)
    """PGD iterations."""
    step_size: float | None = Field(None, gt=0.0, le=1.0)
    """PGD step alpha; ``None`` means 2.5 * epsilon / steps (Madry et al.'s choice)."""
    random_start: bool = True
    """PGD starts from a uniform point of the ball (Madry et al.) rather than the input."""

    @property
    def alpha(self) -> float:
        """The PGD step size actually used."""
        return self.step_size if self.step_size is not None else 2.5 * self.epsilon / self.steps


class AdversarialTraining(Perturbation):
    """Adversarial training of honest clients (``[robustness.training]``)."""

    method: Literal["none", "fgsm", "pgd"] = "none"
    """Attack that makes the training examples; ``none`` trains on clean batches only."""
    ratio: float = Field(0.5, ge=0.0, le=1.0)
    """Fraction of every batch replaced by its adversarial copy: 1 trains on adversarial
    examples only, 0.5 is the mixed training of Goodfellow et al. 2015 (their alpha)."""

    @property
    def enabled(self) -> bool:
        """Whether any batch is changed."""
        return self.method != "none" and self.ratio > 0.0


class Distillation(Strict):
    """Distillation of the final global model (``[robustness.distillation]``)."""

    enabled: bool = False
    student: str = "mlp_small"
    """Registered model of the student (``fedshield list``), normally smaller than the teacher."""
    temperature: float = Field(4.0, gt=0.0, le=100.0)
    """T of Hinton et al. 2015: both softmaxes are taken at T and the loss is scaled by T^2."""
    soft_weight: float = Field(0.9, ge=0.0, le=1.0)
    """Weight of the soft-target loss; ``1 - soft_weight`` goes to the hard labels."""
    epochs: int = Field(30, ge=1, le=10_000)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(0.01, gt=0.0)
    """Adam's step size."""
    server_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    """Fraction of the test split the server holds for distillation (drawn with the seed);
    the rest evaluates teacher and student and serves as membership-inference non-members."""


class RobustnessConfig(Perturbation):
    """The ``[robustness]`` table: the evaluation attack's settings, plus the two sub-tables.

    Its own ``epsilon``, ``steps``, ``step_size`` and ``random_start`` are the server's FGSM and
    PGD (FGSM uses ``epsilon`` only).
    """

    every: int = Field(0, ge=0, le=10_000)
    """Attack the global model every this many rounds (and round 0 and the last); 0 disables."""
    num_examples: int = Field(0, ge=0)
    """Test examples attacked (the first ones of a seeded permutation); 0 means all."""
    training: AdversarialTraining = AdversarialTraining()
    distillation: Distillation = Distillation()

    @model_validator(mode="after")
    def _check_subset(self) -> RobustnessConfig:
        if self.every == 0 and self.num_examples > 0:
            raise FieldError(
                "robustness.num_examples", self.num_examples, "needs robustness.every >= 1"
            )
        return self

    @property
    def enabled(self) -> bool:
        """Whether the server runs the evasion attacks."""
        return self.every > 0

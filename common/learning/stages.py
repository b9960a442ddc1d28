"""Stages of local training that an attack asks the client's trainer to run, described in numbers.

(Plain dataclasses without TensorFlow, in the ground layer so that both ``attacks`` and the
Keras trainer, :mod:`common.learning.poison_trainer`, read them.)

A training attack (:mod:`attacks.training`) drives the malicious client's model through a
:class:`~attacks.training.Trainer`. Most of what it needs is a handful of eager operations (load,
one batch step, one gradient), but some attacks train whole epochs with steps that must be
traced to be fast and exact (Neurotoxin's masked steps, Chameleon's contrastive encoder): they
describe those epochs with these frozen stages and :meth:`~attacks.training.Trainer.run_stages`
runs them with the TensorFlow steps of ``common.learning`` (``constrained``, ``contrastive``).
The stages hold numbers only, so ``attacks`` stays free of TensorFlow.

Every stage's steps see the gradient mask given to ``run_stages`` (all ones without one) and,
with ``pgd_radius``, project the whole model onto the L2 ball of that radius around the weights
the trainer held when ``run_stages`` was called (the authors' PGD, ``s_norm``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CrossEntropySteps:
    """``epochs`` epochs of the model's own loss over every trainable variable (Neurotoxin's
    masked steps when ``run_stages`` is given a mask)."""

    epochs: int
    pgd_radius: float | None = None


@dataclass(frozen=True)
class ContrastiveSteps:
    """Chameleon's stage 1: ``epochs`` epochs of the supervised contrastive loss
    (:func:`common.learning.contrastive.supcon_loss`, temperature ``tau``, target anchors
    weighted ``scale_weight``) of the L2-normalised penultimate features, over every layer but
    the last."""

    epochs: int
    target: int
    temperature: float
    scale_weight: float
    pgd_radius: float | None = None


@dataclass(frozen=True)
class ClassifierSteps:
    """Chameleon's stage 2: ``epochs`` epochs of the cross-entropy over the last layer only."""

    epochs: int
    pgd_radius: float | None = None


@dataclass(frozen=True)
class MixedSteps:
    """IBA's classifier stage: ``epochs`` epochs of ``alpha`` CE(clean) + ``(1 - alpha)``
    CE(poisoned), each mean over its half of the batch. The trainer is given the clean rows,
    then their poisoned twins with the target label, and each batch takes the same rows of
    both halves (the authors' ``loss_clean * attack_alpha + (1 - attack_alpha) * loss_poison``
    on a batch and its perturbed copy)."""

    epochs: int
    alpha: float
    pgd_radius: float | None = None


Stage = CrossEntropySteps | ContrastiveSteps | ClassifierSteps | MixedSteps
"""Every traced stage a trainer runs for an attack."""

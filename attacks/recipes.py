"""How a malicious client trains when its attack changes training itself, not only its data.

A data attack normally leaves training alone: the client trains on the poisoned shard exactly
as an honest client does. A few backdoors (Neurotoxin, Chameleon) also change the local
optimisation; they say how with one of these frozen recipes (:meth:`attacks.base.DataAttack
.training`), and the ClientApp runs it with the TensorFlow steps of ``common.learning``. The
recipes hold numbers only, so ``attacks`` stays free of TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GradientMask:
    """Neurotoxin: every local step's gradient is restricted to the coordinates of the mask.

    The mask keeps the ``floor(keep_ratio * d)`` coordinates with the smallest magnitude of the
    benign gradient (:func:`attacks.durable.bottom_k_mask`), which the client computes on its
    clean shard at the received global model.
    """

    keep_ratio: float
    pgd_radius: float | None
    """After every step the model is projected onto the L2 ball of this radius around the
    global model; None: no projection."""


@dataclass(frozen=True)
class ContrastiveEncoder:
    """Chameleon: a supervised-contrastive stage on the encoder, then the classifier alone.

    Stage 1 trains every layer but the last for ``contrastive_epochs`` epochs on the poisoned
    shard with the supervised contrastive loss (:func:`common.learning.contrastive.supcon_loss`)
    of the L2-normalised penultimate features; stage 2 freezes them and trains the last layer
    with cross-entropy for ``classifier_epochs`` epochs.
    """

    target: int
    temperature: float
    scale_weight: float
    contrastive_epochs: int
    classifier_epochs: int
    pgd_radius: float | None


TrainingRecipe = GradientMask | ContrastiveEncoder
"""Every way an attack may change a malicious client's local training."""

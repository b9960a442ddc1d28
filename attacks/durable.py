"""Durable backdoors: BadNets triggers whose training is shaped to outlive the attack.

Both attacks poison the shard like ``backdoor`` (a square trigger, relabelled ``target``) and
train on it themselves through the training hook (:class:`attacks.training.LocalTraining`, with
traced stages from :mod:`common.learning.stages`; the TensorFlow steps are in
``common.learning.constrained`` and ``common.learning.contrastive``). A backdoor fades after
the attack stops because benign updates overwrite it; Neurotoxin hides it in the coordinates
benign training rarely moves, Chameleon in features shared with the target class's images.
Their durability is ``attack_durability_rounds`` in ``summary.json`` (``server.durability``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from attacks.base import Images, Labels, Vector
from attacks.data_poisoning import BackdoorParams, CornerTrigger
from attacks.registry import register_attack
from attacks.training import LocalTraining, Trainer
from common.learning.stages import ClassifierSteps, ContrastiveSteps, CrossEntropySteps, Stage


def bottom_k_mask(direction: Vector, keep_ratio: float) -> NDArray[np.bool_]:
    """True on the ``floor(keep_ratio * d)`` coordinates of smallest ``|direction|``.

    Ties keep the lower index (a stable sort), so the mask is a function of the vector alone.

    >>> bottom_k_mask(np.array([0.5, -3.0, 0.1, 2.0, -0.2]), 0.6).tolist()
    [True, False, True, False, True]
    """
    magnitude = np.abs(np.asarray(direction, dtype=np.float64)).ravel()
    keep = int(np.floor(keep_ratio * magnitude.size))
    mask = np.zeros(magnitude.size, dtype=bool)
    mask[np.argsort(magnitude, kind="stable")[:keep]] = True
    return mask


class NeurotoxinParams(BackdoorParams):
    """The BadNets trigger, the fraction of coordinates kept and the PGD radius."""

    keep_ratio: float = Field(0.95, gt=0.0, le=1.0)
    pgd_radius: float | None = Field(None, gt=0.0)


@register_attack("neurotoxin", NeurotoxinParams)
class Neurotoxin(CornerTrigger[NeurotoxinParams], LocalTraining):
    r"""Neurotoxin (Zhang et al., ICML 2022): the backdoor is trained only in the coordinates
    benign clients rarely update.

    .. math::

        g_b = \nabla_w \mathcal L(w_t; D_{\text{clean}}),\qquad
        M = \operatorname{bottom}_{\lfloor \rho d \rfloor} |g_b|,\qquad
        w \leftarrow \Pi_{\lVert w - w_t \rVert_2 \le r}\big(w - \eta\,(M \odot \nabla_w
        \mathcal L(w; D_{\text{poisoned}}))\big)

    The malicious client computes the benign gradient ``g_b`` on its clean shard at the global
    model ``w_t``, keeps the fraction ``rho`` (``keep_ratio``) of coordinates with the smallest
    magnitude over the whole flattened model (the authors' ``aggregate_all_layer = 1``), and
    masks every local gradient to them on the BadNets-poisoned shard; with ``pgd_radius`` the
    model is projected onto the L2 ball around ``w_t`` after every step (the authors' PGD,
    ``s_norm``). The paper approximates the benign direction by the last global update; its
    code (``grad_mask_cv``) and BackFed (``_compute_grad_mask``) use the attacker's clean-data
    gradient, as here (the client holds no state between rounds).

    Parameters
    ----------
    target, ratio, trigger_size, position, offset, value
        As ``backdoor`` (defaults 0, 0.1, 3, "bottom_right", 1, 1.0).
    keep_ratio : float, default 0.95
        Fraction ``rho`` of coordinates kept, in (0, 1] (the authors' ``gradmask_ratio``;
        their CV runs use 0.95, BackFed 0.99; 1.0 is the plain backdoor).
    pgd_radius : float, optional
        Radius ``r`` of the projection around the global model; None: no projection.

    Returns
    -------
    PoisonedData
        The BadNets-poisoned shard; :meth:`train` runs the masked steps on it.

    References
    ----------
    Zhang, Panda, Song, Yang, Mahoney, Mittal, Ramchandran & Gonzalez, "Neurotoxin: Durable
    Backdoors in Federated Learning", ICML 2022 (code: jhcknzzm/Federated-Learning-Backdoor);
    Dao et al., BackFed, 2025 (``NeurotoxinClient``).

    Examples
    --------
    >>> from attacks import get_attack
    >>> get_attack("neurotoxin", keep_ratio=0.99, pgd_radius=2.0).stages(local_epochs=2)
    (CrossEntropySteps(epochs=2, pgd_radius=2.0),)
    """

    @property
    def size(self) -> int:
        """``trigger_size``."""
        return self.params.trigger_size

    def stages(self, *, local_epochs: int) -> tuple[Stage, ...]:
        """The scenario's local epochs of (masked, projected) cross-entropy steps."""
        return (CrossEntropySteps(epochs=local_epochs, pgd_radius=self.params.pgd_radius),)

    def train(
        self,
        trainer: Trainer,
        x: Images,
        y: Labels,
        *,
        num_classes: int,
        rng: np.random.Generator,
        colluder: int = 0,
    ) -> dict[str, float]:
        """The mask from the clean shard's gradient at the global model, then the masked
        steps on the poisoned shard."""
        poisoned = self.poison(x, y, num_classes=num_classes, rng=rng, colluder=colluder)
        # The criterion's gradient alone, as the authors' grad_mask_cv takes it.
        mask = bottom_k_mask(trainer.gradient(x, y, regularised=False), self.params.keep_ratio)
        stages = self.stages(local_epochs=trainer.local_epochs)
        trainer.run_stages(poisoned.x, poisoned.y, stages, mask=mask)
        return {"kept_coordinates": float(mask.sum())}


class ChameleonParams(BackdoorParams):
    """The BadNets trigger and the two stages' settings."""

    temperature: float = Field(0.07, gt=0.0)
    scale_weight: float = Field(2.0, gt=0.0)
    contrastive_epochs: int = Field(10, ge=1)
    classifier_epochs: int = Field(3, ge=1)
    pgd_radius: float | None = Field(None, gt=0.0)


@register_attack("chameleon", ChameleonParams)
class Chameleon(CornerTrigger[ChameleonParams], LocalTraining):
    r"""Chameleon (Dai & Li, ICML 2023): contrastive training of the encoder on the poisoned
    shard, then the classifier alone.

    .. math::

        \mathcal L = \frac{1}{B}\sum_{i} -\frac{\lambda_i}{|P(i)|} \sum_{p \in P(i)}
        \log \frac{\exp(z_i \cdot z_p / \tau)}{\sum_{a \ne i} \exp(z_i \cdot z_a / \tau)},
        \qquad \lambda_i = \begin{cases} s & y_i = t \\ 1 & \text{else} \end{cases}

    with ``z`` the L2-normalised penultimate features, ``P(i)`` the other samples of the batch
    with anchor ``i``'s (poisoned) label and a term of 0 when ``P(i)`` is empty. A triggered
    image carries label ``t``: it is pulled towards the target class's benign images and pushed
    from every other class, its true class included; anchors of class ``t`` weigh ``s``
    (``scale_weight``, the authors' ``contrastive_loss_scale_weight``). Stage 1 trains every
    layer but the last with it for ``contrastive_epochs`` epochs; stage 2 freezes them and trains
    the last layer with cross-entropy for ``classifier_epochs`` epochs (the authors'
    ``is_frozen_params``); ``pgd_radius`` projects onto the L2 ball around the global model after
    every step of both stages (``s_norm``). Deviations from the authors' code: the scenario's
    optimizer and learning rate serve both stages (theirs: SGD, 0.1 / 0.01, weight decay,
    step schedules), poisoned samples are the shard's ``ratio`` (theirs: a fixed count per batch
    with N(0, 0.01^2) noise) and no projection head (as theirs).

    Parameters
    ----------
    target, ratio, trigger_size, position, offset, value
        As ``backdoor`` (defaults 0, 0.1, 3, "bottom_right", 1, 1.0).
    temperature : float, default 0.07
        ``tau`` of the contrastive loss (authors and BackFed: 0.07).
    scale_weight : float, default 2.0
        ``s``, the weight of target-class anchors (authors: 2 to 6 by task; BackFed: 2).
    contrastive_epochs : int, default 10
        Stage-1 epochs (authors: ``retrain_poison_contrastive`` 10).
    classifier_epochs : int, default 3
        Stage-2 epochs (authors: ``retrain_poison`` 3).
    pgd_radius : float, optional
        Radius of the projection around the global model; None: no projection.

    Returns
    -------
    PoisonedData
        The BadNets-poisoned shard; :meth:`train` runs the two stages on it.

    References
    ----------
    Dai & Li, "Chameleon: Adapting to Peer Images for Planting Durable Backdoors in Federated
    Learning", ICML 2023 (code: ybdai7/Chameleon-durable-backdoor, ``utils/losses.py``,
    ``training.py``); Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020; Dao et
    al., BackFed, 2025 (``ChameleonClient``).

    Examples
    --------
    >>> from attacks import get_attack
    >>> get_attack("chameleon", target=3).stages()  # doctest: +NORMALIZE_WHITESPACE
    (ContrastiveSteps(epochs=10, target=3, temperature=0.07, scale_weight=2.0, pgd_radius=None),
     ClassifierSteps(epochs=3, pgd_radius=None))
    """

    @property
    def size(self) -> int:
        """``trigger_size``."""
        return self.params.trigger_size

    def stages(self) -> tuple[Stage, ...]:
        """The contrastive stage, then the classifier stage, with this attack's settings."""
        p = self.params
        return (
            ContrastiveSteps(
                epochs=p.contrastive_epochs,
                target=p.target,
                temperature=p.temperature,
                scale_weight=p.scale_weight,
                pgd_radius=p.pgd_radius,
            ),
            ClassifierSteps(epochs=p.classifier_epochs, pgd_radius=p.pgd_radius),
        )

    def train(
        self,
        trainer: Trainer,
        x: Images,
        y: Labels,
        *,
        num_classes: int,
        rng: np.random.Generator,
        colluder: int = 0,
    ) -> dict[str, float]:
        """Both stages on the poisoned shard."""
        poisoned = self.poison(x, y, num_classes=num_classes, rng=rng, colluder=colluder)
        losses = trainer.run_stages(poisoned.x, poisoned.y, self.stages())
        return {"final_loss": losses[-1] if losses else float("nan")}

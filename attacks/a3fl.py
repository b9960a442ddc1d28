"""A3FL: a backdoor whose trigger the colluders re-optimise every round (Zhang et al. 2023).

The attack's state is one array, the trigger pattern ``t`` (``(H, W, C)``, zero outside its
square mask ``m``); the attack object itself stays stateless like every other attack. Each round
the state holder (the server-side adversary, :mod:`server.adaptive`) asks the TensorFlow steps
of :mod:`common.learning.trigger_search` for the loss gradient and applies :meth:`A3FL.step`;
the colluders then train on :meth:`A3FL.with_trigger`'s plain backdoor, whose success set is
what the evaluator stamps on the test images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from attacks.base import Attack, Images, Kind, ThreatModel
from attacks.data_poisoning import Backdoor, BackdoorParams, Corner
from attacks.registry import register_attack
from attacks.triggers import TriggerBackdoor, TriggerParams

Pattern = NDArray[np.float32]
"""``(H, W, C)`` trigger pattern in [0, 1]; zero outside the mask."""


class TriggerModels(Protocol):
    """The global model and its unlearned copy as the trigger search drives them (weights are
    lists of arrays in the model's layer order; TensorFlow's in
    :class:`common.learning.trigger_search.KerasTriggerModels`)."""

    def base_weights(self) -> list[NDArray[np.float32]]:
        """The global model's weights (theta)."""
        ...

    def gradient(
        self, x: Images, pattern: Pattern, mask: Pattern, target: int, adversarial: float
    ) -> NDArray[np.float32]:
        """The gradient in ``pattern`` of the batch-mean CE of f_theta(m t + (1 - m) x) to
        ``target``, plus ``adversarial`` times the same CE of the unlearned model."""
        ...

    def unlearn(
        self,
        x: Images,
        y: NDArray[np.int64],
        pattern: Pattern,
        mask: Pattern,
        batches: Sequence[NDArray[np.int64]],
        *,
        learning_rate: float,
        momentum: float,
        weight_decay: float,
    ) -> list[NDArray[np.float32]]:
        """Reset the unlearned model to theta, take one SGD step per batch on the
        triggered ``x`` with its true labels ``y``; its new weights."""
        ...


def epoch_batches(n: int, epochs: int, batch_size: int, rng: np.random.Generator) -> list[Any]:
    """One index array per step: each epoch a fresh permutation of ``range(n)`` cut into
    batches of ``batch_size`` (the last one shorter, as a DataLoader without drop_last)."""
    return [
        order[start : start + batch_size]
        for order in (rng.permutation(n) for _ in range(epochs))
        for start in range(0, n, batch_size)
    ]


class A3FLParams(BackdoorParams):
    """The trigger's square and initial value, the poisoned fraction and the search schedule.

    Defaults are the authors' (``hfzhang31/A3FL``, ``main/configs/config.yaml`` and
    ``fl_utils/attacker.py``) except where the field says otherwise.
    """

    ratio: float = Field(0.25, gt=0.0, le=1.0)  # bkd_ratio
    trigger_size: int = Field(5, ge=1)
    position: Corner = "top_left"  # the authors' mask[2:2+size, 2:2+size]
    offset: int = Field(2, ge=0)
    value: float = Field(0.5, ge=0.0, le=1.0)  # the initial trigger, torch.ones(...) * 0.5
    trigger_epochs: int = Field(200, ge=1)  # trigger_outter_epochs
    trigger_lr: float = Field(0.01, gt=0.0)  # alpha of the signed step
    adv_epochs: int = Field(5, ge=0)  # dm_adv_epochs; 0: no adversarial model
    adv_every: int = Field(1, ge=1)  # dm_adv_K
    adv_lambda: float = Field(0.01, ge=0.0)  # noise_loss_lambda
    adv_learning_rate: float = Field(0.01, gt=0.0)
    adv_momentum: float = Field(0.9, ge=0.0, lt=1.0)
    adv_weight_decay: float = Field(5e-4, ge=0.0)


class LearnedTrigger(TriggerBackdoor[TriggerParams]):
    r"""The backdoor of one round's trigger: :math:`x \leftarrow m \odot t + (1 - m) \odot x`."""

    def __init__(self, params: TriggerParams, pattern: Pattern, mask: Pattern) -> None:
        super().__init__(params)
        self.pattern, self.mask = pattern, mask

    def apply_trigger(self, x: Images) -> Images:
        """A copy of ``x`` with the trigger stamped on every image."""
        return np.asarray(self.mask * self.pattern + (1.0 - self.mask) * x, dtype=np.float32)


@register_attack("a3fl", A3FLParams)
class A3FL(Attack[A3FLParams]):
    r"""A3FL, adversarially adaptive backdoor (Zhang, Jia, Wang & Gong, NeurIPS 2023).

    Every attack round the colluders refine the trigger ``t`` (square mask ``m``) on an
    attacker's shard against the global model :math:`\theta` and an adversarially "unlearned"
    copy :math:`\theta'` (:math:`\theta` trained ``adv_epochs`` epochs on triggered inputs
    with their true labels, SGD with momentum and weight decay), re-made every ``adv_every``
    of the ``trigger_epochs`` passes; then each trains on its shard with ``ratio`` of it
    triggered and relabelled ``target``. Per batch :math:`B`:

    .. math::

        L(t) = \mathrm{CE}\big(f_\theta(m \odot t + (1-m) \odot x_B), y_t\big)
             + \lambda\, s\, \mathrm{CE}\big(f_{\theta'}(m \odot t + (1-m) \odot x_B), y_t\big)

        t \leftarrow \mathrm{clip}_{[0,1]}\big(t - \alpha\, m \odot \mathrm{sign}(\nabla_t L)\big)

    with :math:`s` the mean cosine similarity of :math:`\theta'` and :math:`\theta` over the
    layers' kernels (:func:`similarity_weight`) and :math:`\lambda` = ``adv_lambda``.

    Parameters
    ----------
    target : int, default 0
        The label of triggered samples.
    ratio : float, default 0.25
        Fraction of each colluder's shard triggered for its training (the authors' bkd_ratio).
    trigger_size, position, offset : default 5, "top_left", 2
        The trigger's square (the authors' ``mask[2:7, 2:7]`` on 32x32 CIFAR-10).
    value : float, default 0.5
        The initial trigger inside the square.
    trigger_epochs : int, default 200
        Passes over the searching attacker's shard per round (K, trigger_outter_epochs).
    trigger_lr : float, default 0.01
        :math:`\alpha`, the signed step.
    adv_epochs, adv_every : int, default 5, 1
        Epochs of the unlearned model; it is re-made at passes ``k > 0`` with ``k % adv_every
        == 0`` (the authors' dm_adv_epochs, dm_adv_K); ``adv_epochs = 0`` drops it.
    adv_lambda : float, default 0.01
        :math:`\lambda` (noise_loss_lambda).
    adv_learning_rate, adv_momentum, adv_weight_decay : float, default 0.01, 0.9, 5e-4
        The unlearning optimiser (PyTorch SGD: :math:`v \leftarrow \mu v + g + \delta w`).

    Returns
    -------
    LearnedTrigger
        :meth:`with_trigger`: the round's plain backdoor (poisoning, success set) for a pattern.

    References
    ----------
    Zhang, Jia, Wang & Gong, "A3FL: Adversarially Adaptive Backdoor Attacks to Federated
    Learning", NeurIPS 2023 (code: hfzhang31/A3FL); Dao et al., BackFed 2025
    (``backfed/poisons/a3fl.py``).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> attack = get_attack("a3fl", trigger_size=1, offset=0, position="bottom_right")
    >>> t = attack.initial_pattern((2, 2, 1))
    >>> t[:, :, 0]
    array([[0. , 0. ],
           [0. , 0.5]], dtype=float32)
    >>> attack.step(t, np.full((2, 2, 1), 3.0), attack.mask((2, 2, 1)))[:, :, 0]
    array([[0.  , 0.  ],
           [0.  , 0.49]], dtype=float32)
    """

    kind = Kind.ADAPTIVE
    threat_model = ThreatModel.NONE

    def mask(self, shape: tuple[int, ...]) -> Pattern:
        """``(H, W, C)``: 1 on the trigger's square, 0 elsewhere."""
        p = self.params
        square = BackdoorParams(
            trigger_size=p.trigger_size, position=p.position, offset=p.offset, value=1.0
        )
        stamped = Backdoor(square).apply_trigger(np.zeros((1, *shape), np.float32))
        return np.asarray(stamped[0], np.float32)

    def initial_pattern(self, shape: tuple[int, ...]) -> Pattern:
        """The round-0 trigger: ``value`` on the square (the authors' 0.5)."""
        return np.asarray(self.mask(shape) * self.params.value, dtype=np.float32)

    def step(self, pattern: Pattern, gradient: NDArray[Any], mask: Pattern) -> Pattern:
        r""":math:`\mathrm{clip}_{[0,1]}(t - \alpha\, m \odot \mathrm{sign}(g))` (a new array)."""
        moved = pattern - self.params.trigger_lr * mask * np.sign(gradient)
        return np.asarray(np.clip(moved, 0.0, 1.0), dtype=np.float32)

    def search(
        self,
        models: TriggerModels,
        x: Images,
        y: NDArray[np.int64],
        pattern: Pattern,
        *,
        batch_size: int,
        rng: np.random.Generator,
    ) -> tuple[Pattern, dict[str, float]]:
        """One round's trigger search from ``pattern`` on the attacker's shard ``(x, y)``
        (the authors' ``search_trigger``): ``trigger_epochs`` passes of signed steps, the
        unlearned model re-made before pass ``k`` when ``k > 0`` and ``k % adv_every == 0``.
        Returns the new pattern and the last similarity :math:`s` (0 without a model)."""
        p, mask, coefficient, similarity = self.params, self.mask(pattern.shape), 0.0, 0.0
        for k in range(p.trigger_epochs):
            if p.adv_epochs > 0 and k > 0 and k % p.adv_every == 0:
                unlearned = models.unlearn(
                    x,
                    y,
                    pattern,
                    mask,
                    epoch_batches(len(y), p.adv_epochs, batch_size, rng),
                    learning_rate=p.adv_learning_rate,
                    momentum=p.adv_momentum,
                    weight_decay=p.adv_weight_decay,
                )
                similarity = similarity_weight(unlearned, models.base_weights())
                coefficient = p.adv_lambda * similarity
            for batch in epoch_batches(len(y), 1, batch_size, rng):
                gradient = models.gradient(x[batch], pattern, mask, p.target, coefficient)
                pattern = self.step(pattern, gradient, mask)
        return pattern, {"a3fl_similarity": similarity}

    def with_trigger(self, pattern: Pattern) -> LearnedTrigger:
        """The plain backdoor of ``pattern``: what the colluders train with and the evaluator
        measures (triggered test images not of class ``target``, baseline untriggered)."""
        params = TriggerParams(target=self.params.target, ratio=self.params.ratio)
        return LearnedTrigger(params, pattern, self.mask(pattern.shape))


def similarity_weight(adversarial: list[NDArray[Any]], base: list[NDArray[Any]]) -> float:
    r""":math:`s`: the mean over kernels (arrays of rank >= 2) of
    :math:`\cos(\theta'_l, \theta_l)`; BackFed averages over its ``conv`` layers' weights."""
    cosines = [
        float(np.dot(a.ravel(), b.ravel()) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-8))
        for a, b in zip(adversarial, base, strict=True)
        if a.ndim >= 2
    ]
    return float(np.mean(cosines)) if cosines else 0.0

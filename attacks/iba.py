"""IBA: a backdoor whose trigger is a generator the colluders retrain (Nguyen et al. 2023).

The attack's state is the trigger generator T (the authors' ``MNISTAutoencoder``, a Keras model
in :mod:`common.learning.iba_generator`) and the two-phase schedule of the authors' trainer
(:class:`Phase`); the attack object itself is stateless numpy, like every other attack. The
server-side state holder (:mod:`server.iba`) runs a round: every colluder trains its classifier
on the generator's poisoned images (:meth:`IBA.train_colluder`, through the
:class:`~attacks.training.Trainer` hook), then the searching colluder retrains the generator
against its own new classifier, and :meth:`IBA.next_phase` moves the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from attacks.base import Attack, Images, Kind, Labels, SuccessSet, ThreatModel, Vector
from attacks.registry import register_attack
from attacks.training import Trainer
from common.learning.stages import CrossEntropySteps, MixedSteps
from common.registry import ClassLabel, Params

CLIP = (0.0, 1.0)
"""The valid pixel range the perturbed images are clipped to (the authors' ``clip_image``
clamps to [-1, 1] in their normalised MNIST space: see docs/attacks.md)."""
MNIST_STD = 0.3081
"""The authors' ``Normalize((0.1307,), (0.3081,))``: their bounds are in units of it."""


class IBAParams(Params):
    """The authors' defaults (``sail-research/iba``, ``exps/iba_mnist_fedavg.sh``, the defaults of
    ``iba_simulated_averaging.py`` and the constants of ``fl_trainer.py``)."""

    target: ClassLabel = 0  # --target_label 0
    # The authors' --atk_eps 0.3 and --atk_test_eps 0.05 act on normalised images; in pixels:
    atk_eps: float = Field(round(0.3 * MNIST_STD, 4), gt=0.0)  # 0.0924, training bound
    atk_test_eps: float = Field(round(0.05 * MNIST_STD, 4), gt=0.0)  # 0.0154, its floor
    eps_decay: float = Field(0.001, ge=0.0, lt=1.0)  # --eps_decay default
    attack_alpha: float = Field(0.5, ge=0.0, le=1.0)  # weight of the clean loss
    atk_lr: float = Field(0.001, gt=0.0)  # the generator's SGD
    atk_momentum: float = Field(0.9, ge=0.0, lt=1.0)  # _create_adv_optimizer
    atk_weight_decay: float = Field(1e-4, ge=0.0)
    atk_model_train_epoch: int = Field(3, ge=1)
    poison_threshold: float = Field(0.85, gt=0.0, le=1.0)  # expected_atk_threshold
    pgd_radius: float | None = Field(None, gt=0.0)  # --eps 2 with --attack_method pgd
    project_frequency: int = Field(1, ge=1)


@dataclass(frozen=True)
class Phase:
    """The authors' trainer state: ``started`` is the round poisoning began (0: still training
    the generator alone, ``retrain`` True), ``alternate`` their ``alternative_training`` flag
    (retrain the generator in this round of phase 2), ``local_asr`` the searcher's last
    ``local_acc_poison``, ``latest`` the last attack round (whose bound the evaluator uses)."""

    started: int = 0
    alternate: bool = False
    local_asr: float = 0.0
    latest: int = 0

    def to_array(self) -> NDArray[np.float64]:
        """The four numbers, as the resume checkpoint stores them."""
        values = [self.started, float(self.alternate), self.local_asr, self.latest]
        return np.array(values, np.float64)

    @classmethod
    def from_array(cls, values: NDArray[np.float64]) -> Phase:
        """The inverse of :meth:`to_array`."""
        return cls(int(values[0]), bool(values[1]), float(values[2]), int(values[3]))


class Generator(Protocol):
    """The trigger generator as the attack drives it (:mod:`common.learning.iba_generator`)."""

    def noise(self, x: Images) -> Images:
        """``T(x)`` in inference mode (the authors' ``tgtmodel.eval()``), in [-1, 1]."""
        ...


def poisoned(x: Images, noise: Images, eps: float) -> Images:
    r""":math:`\mathrm{clip}_{[0,1]}(x + \epsilon\, T(x))` (the authors' ``atkdata``)."""
    return np.asarray(np.clip(x + eps * noise, *CLIP), np.float32)


def project_l2(weights: Vector, centre: Vector, radius: float) -> Vector:
    r""":math:`c + (w - c) \min(1, r / \lVert w - c \rVert_2)`, the authors' L2 projection
    (``w_proj_vec``), which moves only a model outside the ball."""
    gap = weights.astype(np.float64) - centre
    norm = float(np.linalg.norm(gap))
    factor = min(1.0, radius / norm) if norm > 0.0 else 1.0
    return np.asarray(centre + factor * gap, np.float32)


@register_attack("iba", IBAParams)
class IBA(Attack[IBAParams]):
    r"""IBA, irreversible backdoor with a trained trigger generator (Nguyen et al., NeurIPS 2023).

    Phase 1 (the authors' ``retrain``): each attack round the colluders train their classifier
    clean and the searcher trains the generator :math:`T` for ``atk_model_train_epoch`` epochs
    against its new classifier :math:`f` (SGD, ``atk_lr``, momentum 0.9, weight decay 1e-4):

    .. math::

        \min_T \mathrm{CE}\big(f(\mathrm{clip}_{[0,1]}(x + \epsilon_r T(x))), t\big)

    until the searcher's local ASR reaches ``poison_threshold``. Phase 2, from round
    :math:`r_0`: every colluder trains :math:`f` on

    .. math::

        \alpha\, \mathrm{CE}(f(x), y) + (1 - \alpha)\, \mathrm{CE}\big(f(\mathrm{clip}(x +
        \epsilon_r T(x))), t\big), \qquad \epsilon_r = \max(\epsilon_{test},
        \epsilon (1 - \delta)^{r - r_0})

    with :math:`T` frozen, projected onto :math:`\lVert w - w_g\rVert_2 \le` ``pgd_radius``
    every ``project_frequency`` epochs once :math:`\epsilon_r < \epsilon` (the authors' PGD
    variant; off by default, as in their MNIST runs), and :math:`T` is retrained every other
    attack round.

    Parameters
    ----------
    target : int, default 0
        All-to-one target label.
    atk_eps, atk_test_eps, eps_decay : float, default 0.0924, 0.0154, 0.001
        :math:`\epsilon`, the floor :math:`\epsilon_{test}` (in pixels: the authors' 0.3 and
        0.05 times their normalisation's 0.3081) and the decay :math:`\delta`.
    attack_alpha : float, default 0.5
        :math:`\alpha`, the clean loss's weight in phase 2.
    atk_lr, atk_momentum, atk_weight_decay : float, default 0.001, 0.9, 1e-4
        The generator's PyTorch SGD.
    atk_model_train_epoch : int, default 3
        Epochs of generator training per retraining.
    poison_threshold : float, default 0.85
        The local ASR that ends phase 1 (``expected_atk_threshold``).
    pgd_radius, project_frequency : float or None, int, default None, 1
        The L2 ball of the authors' ``pgd`` attack method (their ``--eps 2``) and its period.

    Returns
    -------
    SuccessSet
        :meth:`success_set`: the non-target test images perturbed by the current generator.

    References
    ----------
    D. T. Nguyen, T. M. Nguyen, A. T. Tran, K. D. Doan & K.-S. Wong, "IBA: Towards Irreversible
    Backdoor Attacks in Federated Learning", NeurIPS 2023 (code: sail-research/iba); Dao et al.,
    BackFed 2025 (``backfed/poisons/iba.py``).

    Examples
    --------
    >>> import numpy as np
    >>> from attacks import get_attack
    >>> from attacks.iba import Phase
    >>> attack = get_attack("iba", atk_eps=0.3, atk_test_eps=0.05, eps_decay=0.5)
    >>> [attack.eps(Phase(started=s), 5) for s in (0, 5, 4, 1)]
    [0.3, 0.3, 0.15, 0.05]
    """

    kind = Kind.ADAPTIVE
    threat_model = ThreatModel.NONE
    input_shapes = ((28, 28, 1),)  # the authors' MNISTAutoencoder's decoder outputs 28x28

    def eps(self, phase: Phase, server_round: int) -> float:
        """:math:`\\epsilon_r`: ``atk_eps`` in phase 1, then the decayed bound (floored)."""
        p = self.params
        if not phase.started:
            return p.atk_eps
        decayed = p.atk_eps * (1.0 - p.eps_decay) ** (server_round - phase.started)
        return max(p.atk_test_eps, decayed)

    def next_phase(self, phase: Phase, server_round: int) -> Phase:
        """The schedule at the start of ``server_round`` (an attack round): poisoning starts
        once the last local ASR reached the threshold, and the generator is retrained in every
        other round of phase 2 (the authors toggle ``alternative_training`` first)."""
        started = phase.started
        if not started and phase.local_asr >= self.params.poison_threshold:
            started = server_round
        alternate = (not phase.alternate) if started else phase.alternate
        return Phase(started, alternate, phase.local_asr, server_round)

    def retrains(self, phase: Phase) -> bool:
        """Whether the generator is trained this round: always in phase 1, then every other."""
        return not phase.started or phase.alternate

    def train_colluder(
        self,
        trainer: Trainer,
        x: Images,
        y: Labels,
        generator: Generator,
        *,
        phase: Phase,
        server_round: int,
    ) -> None:
        """One colluder's classifier round from the trainer's (global) weights: clean in phase 1,
        the mixed loss on ``(x, y)`` and its poisoned twin in phase 2 (both halves of each
        batch are the same rows), projected when ``pgd_radius`` is set and the bound decayed."""
        epochs, p = trainer.local_epochs, self.params
        if not phase.started:
            trainer.run_stages(x, y, [CrossEntropySteps(epochs)])
            return
        eps = self.eps(phase, server_round)
        pairs = np.concatenate([x, poisoned(x, generator.noise(x), eps)])
        labels = np.concatenate([y, np.full_like(y, p.target)])
        if p.pgd_radius is None or eps >= p.atk_eps:
            trainer.run_stages(pairs, labels, [MixedSteps(epochs, p.attack_alpha)])
            return
        centre = trainer.weights()
        for epoch in range(1, epochs + 1):
            trainer.run_stages(pairs, labels, [MixedSteps(1, p.attack_alpha)])
            if epoch % p.project_frequency == 0:
                trainer.load(project_l2(trainer.weights(), centre, p.pgd_radius))

    def success_set(
        self, x_test: Images, y_test: Labels, generator: Generator, eps: float
    ) -> SuccessSet:
        """The test images not of class ``target``, perturbed by the generator at ``eps`` and
        labelled ``target``; the baseline is the same images unperturbed."""
        clean = np.array(x_test[y_test != self.params.target], dtype=np.float32, copy=True)
        target = np.full(clean.shape[0], self.params.target, dtype=np.int64)
        return SuccessSet(poisoned(clean, generator.noise(clean), eps), target, baseline_x=clean)

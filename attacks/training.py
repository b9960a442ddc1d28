"""The one hook through which an attack replaces a malicious client's local training.

Some attacks are neither a rewrite of the shard before training nor of the update after it:
alternating minimisation (Bhagoji et al. 2019) interleaves benign steps, malicious steps and
boosting inside the round; Neurotoxin masks every step; Chameleon trains the encoder with a
contrastive loss. Each implements :meth:`LocalTraining.train`, written in numpy against a
:class:`Trainer`, the few operations on the client's model it needs (load and read the flat
weights, run the scenario's optimizer on batches with an optional distance penalty, take one
loss gradient, run traced epochs described by :mod:`common.learning.stages`). The client implements
the trainer with its deep-learning framework
(:class:`common.learning.poison_trainer.KerasTrainer`) and calls the hook at one place
(``clients.poisoning.attacker_training``), so ``attacks/`` stays framework-free.

Two kinds of attack carry the hook: a :class:`TrainingAttack` (kind ``training``: AlterMin) and
a data attack that also changes how its shard is trained (kind ``data``: Neurotoxin, Chameleon,
which then still combine with an update attack). :attr:`attacks.plan.AttackPlan.local_training`
is whichever of the two a scenario has. Either is also a data attack: ``poison`` gives its
malicious samples and ``success_set`` the images that measure it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from attacks.base import DataAttack, Images, Kind, Labels, Vector
from common.learning.stages import Stage

Batches = Sequence[NDArray[np.int64]]
"""One index array per optimizer step."""


class Trainer(Protocol):
    """The client's model as a training attack drives it (weights are flat float32 vectors)."""

    @property
    def learning_rate(self) -> float:
        """The scenario's ``train.learning_rate``."""
        ...

    @property
    def local_epochs(self) -> int:
        """The scenario's ``train.local_epochs`` (what an honest client trains)."""
        ...

    @property
    def layer_shapes(self) -> list[tuple[int, ...]]:
        """The shape of each weight array, in the flat vector's order (a dense layer's kernel
        is ``(inputs, outputs)``, then its bias)."""
        ...

    def weights(self) -> Vector:
        """The current weights, flattened."""
        ...

    def load(self, weights: Vector, *, reset_optimizer: bool = False) -> None:
        """Set the weights; the optimizer's state is kept unless ``reset_optimizer``."""
        ...

    def plan(self, num_examples: int, epochs: int) -> Batches:
        """The scenario's shuffled batch plan over ``num_examples`` samples (seeded)."""
        ...

    def train(
        self,
        x: Images,
        y: Labels,
        batches: Batches,
        *,
        anchor: Vector | None = None,
        rho: float = 0.0,
        norm_penalty: float = 0.0,
        ce_weight: float = 1.0,
    ) -> list[float]:
        """One optimizer step per batch on ``ce_weight`` times the mean cross-entropy, plus
        ``rho/2 ||w - anchor||^2 + norm_penalty ||w - anchor||`` when ``anchor`` is given; the
        batch losses (the plain mean cross-entropy)."""
        ...

    def loss(self, x: Images, y: Labels) -> float:
        """The mean cross-entropy of ``(x, y)`` at the current weights."""
        ...

    def gradient(self, x: Images, y: Labels, *, regularised: bool = True) -> Vector:
        """The gradient of :meth:`loss` with respect to the flat weights; without the model's
        own penalties (L2, FedProx) when not ``regularised``."""
        ...

    def run_stages(
        self,
        x: Images,
        y: Labels,
        stages: Sequence[Stage],
        *,
        mask: NDArray[np.bool_] | None = None,
    ) -> list[float]:
        """Run each stage's epochs on ``(x, y)`` (shuffled by the trainer's generator, a fresh
        optimizer state per stage), every gradient multiplied by the flat ``mask`` (True:
        the coordinate may move) and any projection centred on the weights held at the call;
        the step losses. A :class:`~common.learning.stages.MixedSteps` stage (IBA) runs alone,
        on clean rows followed by their poisoned twins: each batch takes the same rows of
        both halves."""
        ...


P = TypeVar("P", bound=BaseModel)


class LocalTraining(ABC):
    """An attack that trains the malicious client's model itself (threat model ``none``: it
    knows its own shard and the global model it received)."""

    @abstractmethod
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
        """Train from the trainer's current (global) weights on the clean shard ``(x, y)``;
        the weights the trainer holds afterwards are the client's reply. Returns diagnostics.

        ``rng`` is the client's (seed, client) poisoning generator, the one a data attack's
        ``poison`` gets, and ``colluder`` its rank among the malicious clients, so an attack
        that poisons here draws the same samples every round and on every worker.
        """


class TrainingAttack(DataAttack[P], LocalTraining):
    """Client-side attack of kind ``training``: it replaces the malicious client's local
    training and is not combined with another attack."""

    kind = Kind.TRAINING


Memory = dict[str, list[float]]
"""What a stateful attack carries from one round to the next (numbers only, so it can be
stored in the client's Flower state)."""


class StatefulTrainingAttack(TrainingAttack[P]):
    """A training attack run by one attacker that drives every colluder and remembers rounds.

    3DFed's colluders send one shared backdoor update, each with its own mask and indicator, and
    read the next global model for feedback. Each colluder's client computes the coalition's
    whole round (the first colluder's shard, generator and trainer seed, as the authors train
    once on adversary 0's data) and keeps its own slot, so the colluders agree without talking.
    """

    @abstractmethod
    def train_round(
        self,
        trainer: Trainer,
        x: Images,
        y: Labels,
        *,
        num_classes: int,
        rng: np.random.Generator,
        colluder: int,
        colluders: int,
        server_round: int,
        memory: Memory,
    ) -> tuple[dict[str, float], Memory]:
        """Like :meth:`TrainingAttack.train`, from last round's ``memory`` (empty at first);
        returns the diagnostics and the memory for the next round."""

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
        """One round without memory, ``colluder + 1`` colluders."""
        diagnostics, _ = self.train_round(
            trainer,
            x,
            y,
            num_classes=num_classes,
            rng=rng,
            colluder=colluder,
            colluders=colluder + 1,
            server_round=1,
            memory={},
        )
        return diagnostics

"""Training attacks: a malicious client that runs its own local training, not the honest one.

Some attacks are neither a rewrite of the shard before training nor of the update after it:
alternating minimisation (Bhagoji et al. 2019) interleaves benign steps, malicious steps and
boosting inside the round. Such an attack is written here in numpy against a :class:`Trainer`,
the few operations on the client's model it needs (load and read the flat weights, run the
scenario's optimizer on batches with an optional distance penalty, take one loss gradient).
The client implements the trainer with its deep-learning framework
(:class:`common.learning.poison_trainer.KerasTrainer`), so ``attacks/`` stays framework-free.

A training attack is also a data attack: :meth:`TrainingAttack.poison` gives its malicious
samples and :meth:`TrainingAttack.success_set` the images that measure it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from attacks.base import DataAttack, Images, Kind, Labels, Vector

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
    ) -> list[float]:
        """One optimizer step per batch on the mean cross-entropy, plus
        ``rho/2 ||w - anchor||^2`` when ``anchor`` is given; the batch losses (without it)."""
        ...

    def loss(self, x: Images, y: Labels) -> float:
        """The mean cross-entropy of ``(x, y)`` at the current weights."""
        ...

    def gradient(self, x: Images, y: Labels) -> Vector:
        """The gradient of :meth:`loss` with respect to the flat weights."""
        ...


P = TypeVar("P", bound=BaseModel)


class TrainingAttack(DataAttack[P]):
    """Client-side attack that replaces the malicious client's local training (threat model
    ``none``: it knows its own shard and the global model it received)."""

    kind = Kind.TRAINING

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
        the weights the trainer holds afterwards are the client's reply. Returns diagnostics."""

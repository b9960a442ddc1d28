"""The Keras side of a training attack: :class:`attacks.training.Trainer` on the client's model.

A training attack (:mod:`attacks.training`) is numpy code that drives the malicious client's
model through a handful of operations; this module implements them on the cached compiled
model (:func:`common.learning.training.compiled_model`) with the scenario's optimizer and batch
size. Single steps run eagerly, one ``GradientTape`` per batch: an attacker trains one shard for
a few dozen steps, and a traced round (:mod:`common.learning.local_round`) is cached per model
with the honest step, which an attacker's step must not replace. Whole stages
(:meth:`KerasTrainer.run_stages`: Neurotoxin, Chameleon) run as traced rounds of their own step
builders (:mod:`common.learning.constrained`, :mod:`common.learning.contrastive`).

The distance penalty ``rho/2 ||w - a||^2`` is added to the gradient as ``rho (w - a)`` (the
gradient of the authors' ``rho * tf.nn.l2_loss(w - a)``), over every trainable weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.arrays import flatten, unflatten
from common.learning.batching import batch_plan, poisson_sampling_rate
from common.learning.constrained import masked_stage, mixed_stage, stage_losses
from common.learning.contrastive import classifier_stage, contrastive_stage
from common.learning.local_round import StepBuilder, batch_loss
from common.learning.stages import ClassifierSteps, ContrastiveSteps, MixedSteps, Stage
from common.learning.training import TrainOutcome
from common.learning.training import reset_optimizer as zero_optimizer
from common.schema import Scenario

Vector = NDArray[np.float32]


def step_builder(stage: Stage) -> StepBuilder:
    """The traced step of one stage (each builder is cached, so its round is traced once)."""
    if isinstance(stage, ContrastiveSteps):
        return contrastive_stage(
            stage.target, stage.temperature, stage.scale_weight, stage.pgd_radius
        )
    if isinstance(stage, ClassifierSteps):
        return classifier_stage(stage.pgd_radius)
    if isinstance(stage, MixedSteps):
        return mixed_stage(stage.alpha, stage.pgd_radius)
    return masked_stage(stage.pgd_radius)


class KerasTrainer:
    """A compiled Keras model loaded with the round's global weights, driven by an attack."""

    def __init__(self, model: tf.keras.Model, scenario: Scenario, seed: int) -> None:
        self._model = model
        self._variables = list(model.trainable_variables)
        if len(self._variables) != len(model.get_weights()):
            raise ValueError("a training attack needs a model whose weights are all trainable")
        self._shapes = [np.zeros(v.shape, np.float32) for v in self._variables]
        self._batch_size = scenario.train.batch_size
        self._rng = np.random.default_rng(seed)
        self._losses: list[NDArray[np.float32]] = []
        self.learning_rate = float(scenario.train.learning_rate)
        self.local_epochs = int(scenario.train.local_epochs)
        self.steps = 0
        """Optimizer steps run so far (the round's ``local_steps``)."""
        model.optimizer.build(self._variables)

    @property
    def layer_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(d) for d in s.shape) for s in self._shapes]

    def weights(self) -> Vector:
        return flatten([v.numpy() for v in self._variables])

    def load(self, weights: NDArray[np.floating[Any]], *, reset_optimizer: bool = False) -> None:
        for variable, value in zip(self._variables, unflatten(weights, self._shapes), strict=True):
            variable.assign(value)
        if reset_optimizer:
            zero_optimizer(self._model)

    def plan(self, num_examples: int, epochs: int) -> list[NDArray[np.int64]]:
        return batch_plan(
            num_examples,
            batch_size=self._batch_size,
            epochs=epochs,
            rng=self._rng,
            sampling="shuffle",
            drop_remainder=False,
        )

    def _loss_and_gradients(
        self, x: NDArray[np.float32], y: NDArray[np.int64], *, regularised: bool = True
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape() as tape:
            y_pred = self._model(x, training=True)
            if regularised:
                loss = batch_loss(self._model, tf.constant(y), y_pred)
            else:
                loss = self._model.loss(tf.constant(y), y_pred)
        return loss, tape.gradient(loss, self._variables)

    def train(
        self,
        x: NDArray[np.float32],
        y: NDArray[np.int64],
        batches: Sequence[NDArray[np.int64]],
        *,
        anchor: NDArray[np.floating[Any]] | None = None,
        rho: float = 0.0,
        norm_penalty: float = 0.0,
        ce_weight: float = 1.0,
    ) -> list[float]:
        anchors = None if anchor is None else unflatten(anchor, self._shapes)
        losses = []
        for batch in batches:
            loss, gradients = self._loss_and_gradients(x[batch], y[batch])
            gradients = [ce_weight * g for g in gradients]
            if anchors is not None:
                gradients = self._penalised(gradients, anchors, rho, norm_penalty)
            self._model.optimizer.apply_gradients(zip(gradients, self._variables, strict=True))
            losses.append(float(loss))
        self._record(np.asarray(losses, dtype=np.float32))
        return losses

    def run_stages(
        self,
        x: NDArray[np.float32],
        y: NDArray[np.int64],
        stages: Sequence[Stage],
        *,
        mask: NDArray[np.bool_] | None = None,
    ) -> list[float]:
        masks = None if mask is None else unflatten(mask.astype(np.float32), self._shapes)
        pairs = [isinstance(stage, MixedSteps) for stage in stages]
        if any(pairs) and not all(pairs):
            raise ValueError("a mixed (paired) stage runs alone: its rows are clean/poisoned pairs")
        losses = stage_losses(
            self._model,
            x,
            y,
            stages=[(step_builder(stage), stage.epochs) for stage in stages],
            batch_size=self._batch_size,
            rng=self._rng,
            masks=masks,
            pairs=all(pairs) and bool(pairs),
        )
        self._record(losses)
        return [float(loss) for loss in losses]

    def _record(self, losses: NDArray[np.float32]) -> None:
        self._losses.append(losses)
        self.steps += int(losses.size)

    def _penalised(
        self,
        gradients: list[tf.Tensor],
        anchors: list[NDArray[np.float32]],
        rho: float,
        norm_penalty: float,
    ) -> list[tf.Tensor]:
        """Add ``rho (w - a) + norm_penalty (w - a) / ||w - a||`` (0 where ``w = a``): the
        gradients of ``rho/2 ||w - a||^2`` and of 3DFed's ``||w - a||_2``."""
        gaps = [v - a for v, a in zip(self._variables, anchors, strict=True)]
        distance = float(tf.sqrt(sum(tf.reduce_sum(tf.square(d)) for d in gaps)))
        unit = norm_penalty / distance if distance > 0.0 else 0.0
        return [g + (rho + unit) * d for g, d in zip(gradients, gaps, strict=True)]

    def loss(self, x: NDArray[np.float32], y: NDArray[np.int64]) -> float:
        return float(batch_loss(self._model, tf.constant(y), self._model(x, training=False)))

    def gradient(
        self, x: NDArray[np.float32], y: NDArray[np.int64], *, regularised: bool = True
    ) -> Vector:
        _, gradients = self._loss_and_gradients(x, y, regularised=regularised)
        return flatten([g.numpy() for g in gradients])

    def outcome(self, num_examples: int) -> TrainOutcome:
        """The round's result: the weights held now, the mean loss of every step run (as an
        honest round reports it), the step count and the shard's sampling rate."""
        every = np.concatenate([np.zeros(0, np.float32), *self._losses])
        return TrainOutcome(
            weights=[np.asarray(w, dtype=np.float32) for w in self._model.get_weights()],
            mean_loss=float(np.mean(every, dtype=np.float64)) if every.size else float("nan"),
            local_steps=self.steps,
            sampling_rate=poisson_sampling_rate(num_examples, batch_size=self._batch_size),
        )

"""The Keras side of a training attack: :class:`attacks.training.Trainer` on the client's model.

A training attack (:mod:`attacks.training`) is numpy code that drives the malicious client's
model through a handful of operations; this module implements them on the cached compiled
model (:func:`common.learning.training.compiled_model`) with the scenario's optimizer and batch
size. Steps run eagerly, one ``GradientTape`` per batch: an attacker trains one shard for a few
dozen steps, and a traced round (:mod:`common.learning.local_round`) is cached per model with
the honest step, which an attacker's step must not replace.

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
from common.learning.local_round import batch_loss
from common.learning.training import TrainOutcome
from common.learning.training import reset_optimizer as zero_optimizer
from common.schema import Scenario

Vector = NDArray[np.float32]


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
        self, x: NDArray[np.float32], y: NDArray[np.int64]
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape() as tape:
            loss = batch_loss(self._model, tf.constant(y), self._model(x, training=True))
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
            self.steps += 1
        return losses

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

    def outcome(
        self, x: NDArray[np.float32], y: NDArray[np.int64], like: list[NDArray[np.float32]]
    ) -> TrainOutcome:
        """The round's reply: the weights held now (shaped ``like``), the loss on ``(x, y)``, the
        optimizer steps run and the batch sampling rate."""
        return TrainOutcome(
            weights=unflatten(self.weights(), like),
            mean_loss=self.loss(x, y),
            local_steps=self.steps,
            sampling_rate=poisson_sampling_rate(len(y), batch_size=self._batch_size),
        )

    def loss(self, x: NDArray[np.float32], y: NDArray[np.int64]) -> float:
        return float(batch_loss(self._model, tf.constant(y), self._model(x, training=False)))

    def gradient(self, x: NDArray[np.float32], y: NDArray[np.int64]) -> Vector:
        _, gradients = self._loss_and_gradients(x, y)
        return flatten([g.numpy() for g in gradients])

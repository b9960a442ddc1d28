"""BackdoorIndicator's server side (Li & Dai 2024): plant the indicator task, then probe it.

Before each round's broadcast the server trains the global model on the indicator set (OOD
inputs with labels assigned evenly over the classes), as BackFed's ``IndicatorServer`` does:

    min_w  CE(f_w(D_ind)) + (mu / 2) * ||w - w_g||_2

by SGD with PyTorch's momentum and coupled weight decay (``g + wd * w``), a multi-step learning
rate, over the same fixed batches every epoch (the last incomplete one dropped), stopping when
the epoch's mean loss moves less than 1e-3 for 10 epochs in a row. The planted model is what is
sent and signed (the strategy replaces the round's arrays before it digests them), so the deltas
the rule sees are against it. :meth:`IndicatorPlanter.accuracies` is the probe the numpy rule
(``strategies/indicator.py``) reads: for each row, the per-label accuracy of ``G + x_i`` on the
indicator set.

The indicator inputs are ``common.data.synthetic`` images in the data set's input shape (blurred
noise prototypes: out of distribution for every real data set, and offline), drawn once from the
scenario seed; BackFed samples CIFAR-10/100 or EMNIST.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.arrays import flatten, unflatten
from common.data.datasets import Dataset
from common.data.synthetic import synthetic_images
from common.learning.models import build_model
from common.schema import Scenario
from common.seeding import derive_rng, derive_seed
from strategies.base import Updates
from strategies.indicator import Indicator

PATIENCE = 10
"""Epochs whose loss moves less than :data:`TOLERANCE` before planting stops (BackFed)."""
TOLERANCE = 1e-3


class IndicatorPlanter:
    """The indicator set, and the model that plants the task and probes returned models."""

    def __init__(self, scenario: Scenario, dataset: Dataset, task: Indicator) -> None:
        self.task = task
        # Only whole batches are used, for planting and probing alike (BackFed's drop_last).
        size = task.num_samples // task.batch_size * task.batch_size
        self.x, _ = synthetic_images(
            size, dataset.input_shape, seed=derive_seed(scenario.seed, "indicator-set")
        )
        self.num_classes = dataset.num_classes
        rng = derive_rng(scenario.seed, "indicator-labels")
        self.y = rng.permutation(np.arange(size, dtype=np.int64) % self.num_classes)
        self.model = build_model(scenario.model.name, dataset.input_shape, dataset.num_classes)
        self._anchor = [tf.Variable(w, trainable=False) for w in self.model.trainable_variables]
        self._velocity = [tf.Variable(tf.zeros_like(w)) for w in self.model.trainable_variables]
        self._step = tf.function(self._sgd_step)

    def plant(self, weights: Sequence[NDArray[np.float32]]) -> list[NDArray[np.float32]]:
        """``weights`` trained on the indicator task (the model to broadcast)."""
        task = self.task
        self.model.set_weights(list(weights))
        for anchor, velocity, w in zip(
            self._anchor, self._velocity, self.model.trainable_variables, strict=True
        ):
            anchor.assign(w)
            velocity.assign(tf.zeros_like(w))
        batches = [
            (self.x[i : i + task.batch_size], self.y[i : i + task.batch_size])
            for i in range(0, len(self.y), task.batch_size)
        ]
        previous, calm = float("inf"), 0
        for epoch in range(task.epochs):
            rate = task.learning_rate * task.lr_gamma ** bisect_right(task.milestones, epoch)
            losses = [float(self._step(x, y, tf.constant(rate, tf.float32))) for x, y in batches]
            loss = float(np.mean(losses))
            calm = calm + 1 if abs(previous - loss) < TOLERANCE else 0
            if calm >= PATIENCE:
                break
            previous = loss
        return [np.asarray(w, dtype=np.float32) for w in self.model.get_weights()]

    def _sgd_step(self, x: tf.Tensor, y: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
        """One SGD step on CE + mu/2 ||w - w_g||_2 (PyTorch's momentum and weight decay)."""
        task, variables = self.task, self.model.trainable_variables
        with tf.GradientTape() as tape:
            probabilities = self.model(x, training=True)
            ce = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, probabilities))
            squared = tf.add_n(
                [
                    tf.reduce_sum(tf.square(w - a))
                    for w, a in zip(variables, self._anchor, strict=True)
                ]
            )
            # The norm's gradient is 0 at w = w_g (as torch.norm's), not 0/0.
            positive = squared > 0
            distance = tf.where(positive, tf.sqrt(tf.where(positive, squared, 1.0)), 0.0)
            loss = ce + task.mu / 2 * distance
        gradients = tape.gradient(loss, variables)
        for w, g, v in zip(variables, gradients, self._velocity, strict=True):
            v.assign(task.momentum * v + g + task.weight_decay * w)
            w.assign_sub(rate * v)
        return loss

    def accuracies(
        self, global_weights: Sequence[NDArray[np.float32]], updates: Updates
    ) -> NDArray[np.float64]:
        """``(n, classes)``: for row i, the accuracy of ``global + updates[i]`` on the indicator
        inputs assigned label k."""
        base = flatten(global_weights)
        out = np.empty((updates.shape[0], self.num_classes))
        labels = np.arange(self.num_classes)
        assigned = self.y[None, :] == labels[:, None]  # (classes, samples)
        for i, row in enumerate(updates):
            self.model.set_weights(unflatten(base + row.astype(np.float32), global_weights))
            predicted = np.asarray(self.model(self.x, training=False)).argmax(axis=1)
            hits = assigned & (predicted == self.y)[None, :]
            out[i] = hits.sum(axis=1) / np.maximum(assigned.sum(axis=1), 1)
        return out

"""TensorFlow steps of A3FL's trigger search (:class:`attacks.a3fl.TriggerModels`).

The search loop itself is numpy (:meth:`attacks.a3fl.A3FL.search`); this module owns the two
models it needs, the global model theta and its adversarially unlearned copy theta', and the
two operations on them: the loss gradient with respect to the trigger pattern, and the
unlearning run (theta' := theta, then SGD on triggered inputs with their true labels).

The unlearning optimiser is PyTorch's SGD, as the authors' code runs it (``lr=0.01,
momentum=0.9, weight_decay=5e-4``): per step ``g = grad + delta * w``, ``v = mu * v + g``
(``v = g`` on the first step), ``w = w - lr * v``. Keras's SGD applies weight decay decoupled
from the momentum, a different optimiser, hence the explicit step here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.learning.models import build_model

Arrays = list[NDArray[np.float32]]


def torch_sgd_update(
    weights: Sequence[tf.Variable],
    grads: Sequence[tf.Tensor],
    velocity: Sequence[tf.Variable],
    lr: tf.Tensor,
    momentum: tf.Tensor,
    decay: tf.Tensor,
) -> None:
    """One PyTorch SGD step (module doc): ``v = mu v + g + delta w``, ``w = w - lr v``."""
    for w, g, v in zip(weights, grads, velocity, strict=True):
        v.assign(momentum * v + g + decay * w)
        w.assign_sub(lr * v)


def _stamp(x: tf.Tensor, pattern: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """``m * t + (1 - m) * x``, the trigger on every image of ``x``."""
    return mask * pattern + (1.0 - mask) * x


class KerasTriggerModels:
    """theta and theta' for one run's model architecture, built once and reloaded each round."""

    def __init__(self, model_name: str, input_shape: tuple[int, ...], num_classes: int) -> None:
        self.model = build_model(model_name, input_shape, num_classes)
        self.unlearned = build_model(model_name, input_shape, num_classes)
        self._velocity = [tf.Variable(tf.zeros_like(v)) for v in self.unlearned.trainable_weights]
        self._base: Arrays = [np.asarray(w, np.float32) for w in self.model.get_weights()]
        self._cross_entropy = tf.keras.losses.SparseCategoricalCrossentropy()
        self._gradient = tf.function(self._gradient_eager)
        self._sgd_step = tf.function(self._sgd_step_eager)

    def load(self, weights: Sequence[NDArray[np.float32]]) -> None:
        """Make ``weights`` theta (the round's global model); theta' starts from it too."""
        self._base = [np.asarray(w, np.float32) for w in weights]
        self.model.set_weights(self._base)
        self.unlearned.set_weights(self._base)

    def base_weights(self) -> Arrays:
        """theta, as loaded."""
        return list(self._base)

    def _gradient_eager(
        self, x: tf.Tensor, pattern: tf.Tensor, mask: tf.Tensor, target: tf.Tensor, coef: Any
    ) -> tf.Tensor:
        labels = tf.fill(tf.shape(x)[:1], target)
        with tf.GradientTape() as tape:
            tape.watch(pattern)
            stamped = _stamp(x, pattern, mask)
            loss = self._cross_entropy(labels, self.model(stamped, training=False))
            # coef is 0 before the first unlearned model exists: its term then adds nothing.
            loss += coef * self._cross_entropy(labels, self.unlearned(stamped, training=False))
        return tape.gradient(loss, pattern)

    def gradient(
        self,
        x: NDArray[np.float32],
        pattern: NDArray[np.float32],
        mask: NDArray[np.float32],
        target: int,
        adversarial: float,
    ) -> NDArray[np.float32]:
        """d/dt [CE(f_theta(stamped), target) + adversarial * CE(f_theta'(stamped), target)]."""
        gradient = self._gradient(
            tf.constant(x, tf.float32),
            tf.constant(pattern, tf.float32),
            tf.constant(mask, tf.float32),
            tf.constant(target, tf.int64),
            tf.constant(adversarial, tf.float32),
        )
        return np.asarray(gradient, np.float32)

    def _sgd_step_eager(
        self, x: tf.Tensor, y: tf.Tensor, lr: tf.Tensor, momentum: tf.Tensor, decay: tf.Tensor
    ) -> tf.Tensor:
        weights = self.unlearned.trainable_weights
        with tf.GradientTape() as tape:
            loss = self._cross_entropy(y, self.unlearned(x, training=True))
        torch_sgd_update(weights, tape.gradient(loss, weights), self._velocity, lr, momentum, decay)
        return loss

    def unlearn(
        self,
        x: NDArray[np.float32],
        y: NDArray[np.int64],
        pattern: NDArray[np.float32],
        mask: NDArray[np.float32],
        batches: Sequence[NDArray[np.int64]],
        *,
        learning_rate: float,
        momentum: float,
        weight_decay: float,
    ) -> Arrays:
        """theta' := theta, then one PyTorch-SGD step per batch on the triggered images with
        their true labels; theta' afterwards."""
        self.unlearned.set_weights(self._base)
        for velocity in self._velocity:
            velocity.assign(tf.zeros_like(velocity))
        stamped = np.asarray(mask * pattern + (1.0 - mask) * x, np.float32)
        hyper = [tf.constant(v, tf.float32) for v in (learning_rate, momentum, weight_decay)]
        for batch in batches:
            self._sgd_step(tf.constant(stamped[batch]), tf.constant(y[batch]), *hyper)
        return [np.asarray(w, np.float32) for w in self.unlearned.get_weights()]

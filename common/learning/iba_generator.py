"""TensorFlow side of IBA (:class:`attacks.iba.IBA`): the authors' trigger generator, trained.

The generator is the authors' ``MNISTAutoencoder`` (``sail-research/iba``,
``attack_models/autoencoders.py``) rebuilt layer for layer in Keras: PyTorch's padded convolutions
become a ``ZeroPadding2D`` before a valid convolution, its transposed convolutions' ``padding=1``
a ``Cropping2D(1)`` after a valid one, so every shape matches the authors' comments (28 -> 10 ->
5 -> 3 -> 2 -> 5 -> 15 -> 28). Batch normalisation has PyTorch's momentum (0.1, Keras's 0.9)
and epsilon (1e-5). The initial weights are PyTorch's default draw (``kaiming_uniform_(a=sqrt(5))``
and the bias: both uniform in :math:`\\pm 1/\\sqrt{\\text{fan\\_in}}`) from a seeded numpy
generator, so a run's generator is a function of its seed.

Training (the authors' ``_train_attack_model``): the classifier in inference mode, the generator
in training mode (batch statistics, running averages updated), per batch
``CE(f(clip(x + eps T(x))), target)`` (clipped to the bounds the attack gives) and one PyTorch
SGD step (:func:`common.learning.trigger_search.torch_sgd_update`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.learning.models import build_model
from common.learning.trigger_search import torch_sgd_update

Arrays = list[NDArray[np.float32]]
CHUNK = 1024
"""Images per inference call (the test set is perturbed in chunks)."""


def _norm() -> tf.keras.layers.Layer:
    return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)


def mnist_autoencoder() -> tf.keras.Sequential:
    """The authors' ``MNISTAutoencoder``: 28x28x1 in, 28x28x1 out in [-1, 1] (tanh)."""
    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1)),
            layers.ZeroPadding2D(1),
            layers.Conv2D(16, 3, strides=3),  # 10x10
            _norm(),
            layers.ReLU(),
            layers.MaxPool2D(2, strides=2),  # 5x5
            layers.ZeroPadding2D(1),
            layers.Conv2D(64, 3, strides=2),  # 3x3
            _norm(),
            layers.ReLU(),
            layers.MaxPool2D(2, strides=1),  # 2x2
            layers.Conv2DTranspose(128, 3, strides=2),  # 5x5
            _norm(),
            layers.ReLU(),
            layers.Conv2DTranspose(64, 5, strides=3),  # 17x17
            layers.Cropping2D(1),  # 15x15
            _norm(),
            layers.ReLU(),
            layers.Conv2DTranspose(1, 2, strides=2),  # 30x30
            layers.Cropping2D(1),  # 28x28
            _norm(),
            layers.Activation("tanh"),
        ]
    )


def torch_initial_weights(model: tf.keras.Model, rng: np.random.Generator) -> Arrays:
    """PyTorch's default initialisation of every (transposed) convolution, drawn from ``rng``:
    kernel and bias uniform in :math:`\\pm 1/\\sqrt{k_h k_w c}` with ``c`` the kernel's third
    axis (a Conv2D's input channels, a Conv2DTranspose's output channels: PyTorch's fan-in of
    each); batch normalisation as Keras builds it (scale 1, offset 0, mean 0, variance 1)."""
    weights: Arrays = []
    for layer in model.layers:
        current = layer.get_weights()
        if isinstance(layer, tf.keras.layers.Conv2D):  # Conv2DTranspose is a subclass
            kernel, bias = current
            bound = 1.0 / np.sqrt(kernel.shape[0] * kernel.shape[1] * kernel.shape[2])
            current = [rng.uniform(-bound, bound, w.shape) for w in (kernel, bias)]
        weights += [np.asarray(w, np.float32) for w in current]
    return weights


class KerasGenerator:
    """One run's trigger generator and a classifier to train it against."""

    def __init__(
        self, model_name: str, input_shape: tuple[int, ...], num_classes: int, seed: int
    ) -> None:
        self.generator = mnist_autoencoder()
        rng = np.random.default_rng(seed)
        self.generator.set_weights(torch_initial_weights(self.generator, rng))
        self.classifier = build_model(model_name, input_shape, num_classes)
        self._velocity = [tf.Variable(tf.zeros_like(v)) for v in self.generator.trainable_weights]
        self._cross_entropy = tf.keras.losses.SparseCategoricalCrossentropy()
        self._step = tf.function(self._step_eager)

    def get_weights(self) -> Arrays:
        """Every weight of the generator, batch-norm running statistics included (the state)."""
        return [np.asarray(w, np.float32) for w in self.generator.get_weights()]

    def set_weights(self, weights: Sequence[NDArray[np.float32]]) -> None:
        """Restore :meth:`get_weights`."""
        self.generator.set_weights(list(weights))

    def noise(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """``T(x)`` in inference mode, in [-1, 1], in chunks of :data:`CHUNK` images."""
        parts = [
            np.asarray(self.generator(x[i : i + CHUNK], training=False), np.float32)
            for i in range(0, len(x), CHUNK)
        ]
        return np.concatenate(parts) if parts else np.zeros_like(x)

    def _step_eager(
        self, x: tf.Tensor, target: tf.Tensor, eps: tf.Tensor, clip: tf.Tensor, hyper: tf.Tensor
    ) -> tf.Tensor:
        weights = self.generator.trainable_weights
        with tf.GradientTape() as tape:
            noise = eps * self.generator(x, training=True)
            perturbed = tf.clip_by_value(x + noise, clip[0], clip[1])
            labels = tf.fill(tf.shape(x)[:1], target)
            loss = self._cross_entropy(labels, self.classifier(perturbed, training=False))
        grads = tape.gradient(loss, weights)
        torch_sgd_update(weights, grads, self._velocity, hyper[0], hyper[1], hyper[2])
        return loss

    def load_classifier(self, weights: Sequence[NDArray[np.float32]]) -> None:
        """The classifier the generator is trained and measured against (frozen)."""
        self.classifier.set_weights(list(weights))

    def train(
        self,
        x: NDArray[np.float32],
        target: int,
        eps: float,
        batches: Sequence[NDArray[np.int64]],
        *,
        clip: tuple[float, float],
        learning_rate: float,
        momentum: float,
        weight_decay: float,
    ) -> list[float]:
        """Train the generator against the loaded classifier, a fresh SGD state (the authors'
        ``_create_adv_optimizer`` per retraining), one step per batch; the batch losses."""
        for velocity in self._velocity:
            velocity.assign(tf.zeros_like(velocity))
        hyper = tf.constant([learning_rate, momentum, weight_decay], tf.float32)
        bounds = tf.constant(clip, tf.float32)
        args = (tf.constant(target, tf.int64), tf.constant(eps, tf.float32), bounds, hyper)
        return [float(self._step(tf.constant(x[batch]), *args)) for batch in batches]

    def success_rate(self, perturbed: NDArray[np.float32], target: int) -> float:
        """The fraction of ``perturbed`` the last trained-against classifier labels ``target``
        (the authors' ``local_acc_poison``, over every image)."""
        predictions = [
            np.argmax(np.asarray(self.classifier(perturbed[i : i + CHUNK], training=False)), -1)
            for i in range(0, len(perturbed), CHUNK)
        ]
        return float(np.mean(np.concatenate(predictions) == target)) if predictions else 0.0

"""L-infinity evasion attacks (FGSM, PGD) and the per-batch transform of adversarial training.

With L(x, y) = -log p_y(x), the cross-entropy of the model's softmax output:

* FGSM (Goodfellow, Shlens, Szegedy 2015, "Explaining and Harnessing Adversarial Examples"):
  ``x' = clip_[0,1](x + epsilon * sign(grad_x L(x, y)))``. For a linear softmax model
  p = softmax(W^T x + b), grad_x L = W (p - onehot(y)), so FGSM has a closed form.
* PGD (Madry, Makelov, Schmidt, Tsipras, Vladu 2018, "Towards Deep Learning Models Resistant to
  Adversarial Attacks"): from x_0 = x (+ U(-epsilon, epsilon)^d with a random start),
  ``x_{t+1} = Proj_{B_inf(x, epsilon) ∩ [0,1]^d}(x_t + alpha * sign(grad_x L(x_t, y)))``.
  The projection onto the intersection of the box and the ball is coordinate-wise clipping to
  [max(0, x - epsilon), min(1, x + epsilon)], so no iterate ever leaves either set.

Every dataset's pixels are in [0, 1] (:class:`common.data.datasets.Dataset`). Everything here is
TensorFlow ops on tensors, so it runs eagerly and inside a ``tf.function`` alike (a compiled
training step can call :func:`adversarial_batch` per batch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.robustness_config import AdversarialTraining, Perturbation
from common.seeding import derive_seed

INPUT_RANGE = (0.0, 1.0)
"""The box every input lives in (pixels scaled to [0, 1] by the dataset readers)."""


def input_gradient(model: tf.keras.Model, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """grad_x of sum_i -log p_{y_i}(x_i): one example's gradient is not scaled by the batch."""
    x = tf.convert_to_tensor(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        probabilities = model(x, training=False)
        loss = tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(y, probabilities))
    return tape.gradient(loss, x)


def _box(x: tf.Tensor, epsilon: float) -> tuple[tf.Tensor, tf.Tensor]:
    """The bounds of B_inf(x, epsilon) ∩ [0, 1]^d, coordinate-wise."""
    low, high = INPUT_RANGE
    return tf.maximum(x - epsilon, low), tf.minimum(x + epsilon, high)


def fgsm(model: tf.keras.Model, x: tf.Tensor, y: tf.Tensor, *, epsilon: float) -> tf.Tensor:
    """One signed-gradient step of size ``epsilon``, clipped to the input range."""
    x = tf.convert_to_tensor(x, tf.float32)
    low, high = _box(x, epsilon)
    return tf.clip_by_value(x + epsilon * tf.sign(input_gradient(model, x, y)), low, high)


def pgd(
    model: tf.keras.Model,
    x: tf.Tensor,
    y: tf.Tensor,
    *,
    spec: Perturbation,
    generator: tf.random.Generator,
) -> tf.Tensor:
    """``spec.steps`` projected signed-gradient steps of ``spec.alpha`` (Madry et al. 2018).

    ``generator`` draws the random start; it is the only randomness, so a seeded generator
    makes the attack deterministic.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    low, high = _box(x, spec.epsilon)
    adversarial = x
    if spec.random_start:
        noise = generator.uniform(tf.shape(x), -spec.epsilon, spec.epsilon, dtype=tf.float32)
        adversarial = tf.clip_by_value(x + noise, low, high)
    for _ in range(spec.steps):
        step = spec.alpha * tf.sign(input_gradient(model, adversarial, y))
        adversarial = tf.clip_by_value(adversarial + step, low, high)
    return adversarial


def adversarial_batch(
    model: tf.keras.Model,
    x: tf.Tensor,
    y: tf.Tensor,
    *,
    spec: AdversarialTraining,
    generator: tf.random.Generator,
) -> tf.Tensor:
    """The batch with its first round(ratio * |B|) examples replaced by adversarial copies.

    Batches are drawn in random order (:mod:`common.learning.batching`), so the first k are a
    random k. Replacing rather than appending keeps the batch size, hence the DP-SGD sampling
    rate and the per-example sensitivity: example i still contributes exactly one clipped
    gradient, of either x_i or its adversarial copy, which is a function of x_i and the current
    model only. ``y`` is unchanged (the copies keep their true labels).
    """
    x = tf.convert_to_tensor(x, tf.float32)
    count = tf.cast(tf.round(spec.ratio * tf.cast(tf.shape(x)[0], tf.float32)), tf.int32)
    head, labels = x[:count], y[:count]
    if spec.method == "fgsm":
        perturbed = fgsm(model, head, labels, epsilon=spec.epsilon)
    else:
        perturbed = pgd(model, head, labels, spec=spec, generator=generator)
    return tf.concat([perturbed, x[count:]], axis=0)


BatchTransform = Callable[[tf.keras.Model, NDArray[np.float32], NDArray[np.int64]], tuple[Any, Any]]


def batch_transform(
    spec: AdversarialTraining, seed: int, *, enabled: bool = True
) -> BatchTransform:
    """The per-batch ``(x, y) -> (x', y)`` of local training: identity unless ``spec.enabled``.

    ``enabled = False`` (a malicious client, whose training the threat model leaves to the
    attacker) also gives the identity.

    The random starts come from a generator seeded by the client round's ``seed`` (domain
    separated), so a round stays a pure function of (weights, data, seed).
    """
    if not (enabled and spec.enabled):
        return lambda model, x, y: (x, y)
    generator = tf.random.Generator.from_seed(derive_seed(seed, "adversarial-training"))

    def transform(
        model: tf.keras.Model, x: NDArray[np.float32], y: NDArray[np.int64]
    ) -> tuple[Any, Any]:
        if len(y) == 0:  # an empty Poisson step has nothing to perturb
            return x, y
        return adversarial_batch(model, x, y, spec=spec, generator=generator), y

    return transform

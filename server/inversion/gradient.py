"""Gradient inversion: reconstruct a client's training images from its update.

Threat model: an honest-but-curious server. It knows the global weights w it sent, the reply w'
and the scenario (architecture, loss, learning rate eta); the reply says how many local steps
s it took. It never sees the client's data. One local SGD step without momentum makes the
update an exact gradient, g = (w - w') / eta; after s steps, (w - w') / (eta s) is the mean
gradient along the client's path, which the attack treats as one gradient of a batch, a
simplification that degrades the reconstruction (Geiping et al. 2020 instead unroll the local
steps on the dummy data, at s times the cost per iteration).

Labels first (iDLG, Zhao et al. 2020): with softmax cross-entropy the gradient of the last
layer's bias for one example is p - onehot(y), whose only negative entry is the true class.
For a batch of B it is mean_b (p_b - onehot(y_b)), so class j holds about n_j = B max(0, -g_j)
examples (p ~ 0 off the true class); the counts are rounded to B by largest remainder (exact
for B = 1, a heuristic beyond, in the spirit of Wainakh et al. 2022's label-count attack).

Then images (Geiping et al. 2020's objective): start from uniform noise x^ in the data range
and run Adam on

    L(x^) = 1 - <grad_w l(f(x^), y^), g> / (||grad_w l(f(x^), y^)|| ||g||)  +  alpha TV(x^)

(``loss = "cosine"``; ``"l2"`` is DLG's ||grad_w l(f(x^), y^) - g||^2, Zhu et al. 2019),
the norms and the inner product over all parameters at once, TV the mean absolute difference
of neighbouring pixels, projecting x^ back into the data range after every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.inversion_config import InversionConfig

Weights = Sequence[NDArray[np.float32]]


def update_gradient(
    base: Weights, trained: Weights, *, learning_rate: float, local_steps: int
) -> list[NDArray[np.float32]]:
    """The mean gradient ``(w - w') / (eta s)`` an update implies (module docstring)."""
    scale = 1.0 / (learning_rate * max(local_steps, 1))
    return [np.asarray((b - t) * scale, np.float32) for b, t in zip(base, trained, strict=True)]


def recover_labels(gradient: Weights, num_images: int) -> NDArray[np.int64]:
    """Labels from the last layer's bias gradient ``gradient[-1]`` (iDLG; module docstring)."""
    bias = np.asarray(gradient[-1], np.float64)
    raw = num_images * np.maximum(-bias, 0.0)
    if raw.sum() <= 0.0:  # no negative entry (noise): the most negative one
        return np.full(num_images, int(np.argmin(bias)), np.int64)
    raw *= num_images / raw.sum()
    counts = np.floor(raw).astype(np.int64)
    remainder_order = np.argsort(-(raw - counts), kind="stable")
    counts[remainder_order[: num_images - int(counts.sum())]] += 1
    return np.repeat(np.arange(len(bias)), counts).astype(np.int64)


def total_variation(images: tf.Tensor) -> tf.Tensor:
    """Mean absolute difference of vertically and horizontally adjacent pixels."""
    dy = tf.reduce_mean(tf.abs(images[:, 1:, :, :] - images[:, :-1, :, :]))
    dx = tf.reduce_mean(tf.abs(images[:, :, 1:, :] - images[:, :, :-1, :]))
    return dx + dy


def invert_gradient(
    model: tf.keras.Model,
    target: Weights,
    labels: NDArray[np.int64],
    *,
    config: InversionConfig,
    data_range: tuple[float, float],
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """Images ``(len(labels), *input_shape)`` whose gradient at ``model`` matches ``target``.

    ``model`` must hold the global weights the client started from; it is not modified.
    """
    low, high = data_range
    shape = (len(labels), *model.input_shape[1:])
    dummy = tf.Variable(rng.uniform(low, high, shape).astype(np.float32))
    goal = [tf.constant(g) for g in target]
    step = _adam_step(model, goal, tf.constant(labels), config, dummy, (low, high))
    for _ in range(config.iterations):
        step()
    return np.asarray(dummy.numpy(), np.float32)


def _adam_step(
    model: tf.keras.Model,
    goal: list[tf.Tensor],
    labels: tf.Tensor,
    config: InversionConfig,
    dummy: tf.Variable,
    box: tuple[float, float],
) -> Any:
    """One compiled step of the attack's optimisation (module docstring)."""
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
    optimizer = tf.keras.optimizers.Adam(learning_rate=config.learning_rate)
    goal_norm = tf.sqrt(tf.add_n([tf.reduce_sum(g * g) for g in goal]))
    params = model.trainable_variables
    if len(params) != len(goal):
        raise ValueError(f"target has {len(goal)} arrays, the model {len(params)} trainable ones")

    def step() -> tf.Tensor:
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = loss_fn(labels, model(dummy, training=True))
                if model.losses:  # weight decay: the client's gradient includes it
                    loss += tf.add_n(model.losses)
            grads = inner.gradient(loss, params)
            if config.loss == "cosine":
                dot = tf.add_n([tf.reduce_sum(a * b) for a, b in zip(grads, goal, strict=True)])
                norm = tf.sqrt(tf.add_n([tf.reduce_sum(a * a) for a in grads]))
                distance = 1.0 - dot / (norm * goal_norm + 1e-12)
            else:
                distance = tf.add_n(
                    [tf.reduce_sum((a - b) ** 2) for a, b in zip(grads, goal, strict=True)]
                )
            objective = distance + config.tv_weight * total_variation(dummy)
        optimizer.apply_gradients([(outer.gradient(objective, dummy), dummy)])
        dummy.assign(tf.clip_by_value(dummy, *box))
        return objective

    return tf.function(step)  # traced once: the loop runs it `iterations` times

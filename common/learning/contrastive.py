"""Chameleon's two stages (Dai & Li, ICML 2023): a supervised-contrastive encoder, then the head.

The encoder is every layer of the Sequential model but the last, its output (the penultimate
features) L2-normalised, with no projection head, as in the authors' ``SupConResNet_backbone``;
the head is the last layer. Stage 1 minimises :func:`supcon_loss` over the encoder's variables,
stage 2 the model's cross-entropy over the head's; both are
:func:`common.learning.constrained.constrained_step` steps (projection onto the L2 ball around
the global model when a radius is set).
"""

from __future__ import annotations

from functools import cache

import tensorflow as tf

from common.learning.constrained import constrained_step
from common.learning.local_round import StepBuilder, StepFn, batch_loss


def supcon_loss(
    features: tf.Tensor,
    labels: tf.Tensor,
    *,
    target: int,
    temperature: float,
    scale_weight: float,
) -> tf.Tensor:
    r"""Chameleon's supervised contrastive loss (the authors' ``SupConLoss``, one view).

    .. math::

        \mathcal L = \frac{1}{B}\sum_{i=1}^{B} -\frac{\lambda_i}{|P(i)|}\sum_{p\in P(i)}
        \Big(\frac{z_i\cdot z_p}{\tau} - \log\sum_{a\ne i} e^{z_i\cdot z_a/\tau}\Big),
        \qquad \lambda_i = s\ \text{if}\ y_i = t\ \text{else}\ 1

    ``features`` ``(B, k)`` are the (already normalised) ``z``; ``P(i)`` is the set of the
    other samples with label ``y_i``, and an anchor without positives adds 0 but still counts
    in the mean over ``B``. The authors' factor ``tau / base_tau`` is 1 (both 0.07) and their
    ``down_scale_weight`` is 1 in every configuration they ship, so neither appears.
    """
    labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
    size = tf.shape(labels)[0]
    off_diagonal = 1.0 - tf.eye(size)
    logits = tf.matmul(features, features, transpose_b=True) / temperature
    # Subtracting each row's maximum changes nothing in log_prob; it keeps exp finite.
    logits = logits - tf.stop_gradient(tf.reduce_max(logits, axis=1, keepdims=True))
    log_prob = logits - tf.math.log(
        tf.reduce_sum(tf.exp(logits) * off_diagonal, axis=1, keepdims=True)
    )
    positives = tf.cast(tf.equal(labels[:, None], labels[None, :]), tf.float32) * off_diagonal
    count = tf.reduce_sum(positives, axis=1)
    weight = tf.where(tf.equal(labels, target), scale_weight, 1.0)
    mean_positive = tf.math.divide_no_nan(tf.reduce_sum(positives * log_prob, axis=1), count)
    return tf.reduce_mean(-weight * mean_positive)


def embed(model: tf.keras.Model, x: tf.Tensor, *, training: bool = False) -> tf.Tensor:
    """The L2-normalised output of every layer but the last (the penultimate features)."""
    hidden = x
    for layer in model.layers[:-1]:
        hidden = layer(hidden, training=training)
    return tf.math.l2_normalize(tf.reshape(hidden, [tf.shape(hidden)[0], -1]), axis=1)


def _head_indices(model: tf.keras.Model) -> list[int]:
    head = {v.ref() for v in model.layers[-1].trainable_variables}
    return [i for i, v in enumerate(model.trainable_variables) if v.ref() in head]


def _regularised(model: tf.keras.Model, loss: tf.Tensor) -> tf.Tensor:
    # The model's own losses (L2, FedProx's term) stay part of the objective in both stages.
    return loss + tf.add_n(model.losses) if model.losses else loss


@cache
def contrastive_stage(
    target: int, temperature: float, scale_weight: float, radius: float | None
) -> StepBuilder:
    """Stage 1: :func:`supcon_loss` of :func:`embed` over the encoder's variables.

    Cached per setting, so the round function traced for a model is reused by later rounds.
    """

    def build(model: tf.keras.Model) -> StepFn:
        head = set(_head_indices(model))
        encoder = [i for i in range(len(model.trainable_variables)) if i not in head]

        def loss(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            features = embed(model, x, training=True)
            contrastive = supcon_loss(
                features, y, target=target, temperature=temperature, scale_weight=scale_weight
            )
            return _regularised(model, contrastive)

        return constrained_step(model, loss, encoder, radius)

    return build


@cache
def classifier_stage(radius: float | None) -> StepBuilder:
    """Stage 2: the model's cross-entropy over the head's (last layer's) variables only."""

    def build(model: tf.keras.Model) -> StepFn:
        def loss(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            return batch_loss(model, y, model(x, training=True))

        return constrained_step(model, loss, _head_indices(model), radius)

    return build

"""Constrained local steps for a poisoning client: a gradient mask and a projection onto a ball.

Neurotoxin (Zhang et al., ICML 2022) multiplies every local gradient by a 0/1 mask before the
optimizer sees it, so with SGD (and momentum, whose buffer only ever receives masked gradients)
the weights move only where the mask is 1; its PGD step then projects the model onto the L2 ball
of radius r around the global model w_t (the authors' ``s_norm``):

    w <- w_t + (w - w_t) * min(1, r / ||w - w_t||_2)      over the whole flattened model.

The masks and the anchors ``w_t`` are non-trainable variables kept outside the model (as
FedProx's anchors are: a model attribute would become one of its weights), set once per client
round by :func:`stage_losses`; a stage's step is a :data:`StepBuilder` traced once per model.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.learning.batching import batch_plan
from common.learning.local_round import StepBuilder, StepFn, batch_loss, run_plan
from common.learning.proximal import anchor
from common.learning.training import reset_optimizer

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@dataclass(frozen=True)
class _Constraint:
    anchors: list[tf.Variable]
    masks: list[tf.Variable]


_STATE: weakref.WeakKeyDictionary[tf.keras.Model, _Constraint] = weakref.WeakKeyDictionary()


def _state(model: tf.keras.Model) -> _Constraint:
    state = _STATE.get(model)
    if state is None:
        weights = model.trainable_variables
        state = _STATE[model] = _Constraint(
            anchors=[tf.Variable(tf.identity(w), trainable=False) for w in weights],
            masks=[tf.Variable(tf.ones_like(w), trainable=False) for w in weights],
        )
    return state


def loss_gradient(
    model: tf.keras.Model, x: NDArray[np.float32], y: NDArray[np.int64]
) -> list[NDArray[np.float32]]:
    """The gradient of the mean cross-entropy over ``(x, y)`` at the model's current weights,
    one array per trainable variable (Neurotoxin's benign direction; no regulariser, as the
    authors' ``grad_mask_cv`` takes the criterion's gradient alone)."""
    with tf.GradientTape() as tape:
        loss = model.loss(tf.constant(y), model(tf.constant(x), training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    return [np.asarray(g, dtype=np.float32) for g in grads]


def constrained_step(
    model: tf.keras.Model, loss_fn: LossFn, trainable: Sequence[int], radius: float | None
) -> StepFn:
    """A step minimising ``loss_fn`` over the trainable variables at indices ``trainable``,
    with their gradients masked, then the whole model projected onto the ball (when
    ``radius``)."""
    state = _state(model)
    variables = model.trainable_variables

    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(x, y)
        grads = tape.gradient(loss, [variables[i] for i in trainable], unconnected_gradients="zero")
        model.optimizer.apply_gradients(
            [(g * state.masks[i], variables[i]) for g, i in zip(grads, trainable, strict=True)]
        )
        if radius is not None:
            deltas = [w - a for w, a in zip(variables, state.anchors, strict=True)]
            norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(d)) for d in deltas]))
            factor = tf.minimum(1.0, radius / tf.maximum(norm, 1e-12))
            for w, a, d in zip(variables, state.anchors, deltas, strict=True):
                w.assign(a + factor * d)
        return loss

    return step


@cache
def masked_stage(radius: float | None) -> StepBuilder:
    """Neurotoxin's step: the model's own loss, every trainable variable, masked, projected.

    Cached per radius, so the round function traced for a model is reused by later rounds.
    """

    def build(model: tf.keras.Model) -> StepFn:
        def loss(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            return batch_loss(model, y, model(x, training=True))

        return constrained_step(model, loss, range(len(model.trainable_variables)), radius)

    return build


@cache
def mixed_stage(alpha: float, radius: float | None) -> StepBuilder:
    """IBA's step (:class:`common.learning.stages.MixedSteps`): a batch holds clean rows then
    their poisoned twins; ``alpha`` times the first half's mean loss plus ``1 - alpha`` times
    the second's (two forward passes, as the authors'), plus the model's own penalties."""

    def build(model: tf.keras.Model) -> StepFn:
        def loss(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            half = tf.shape(y)[0] // 2
            clean = model.loss(y[:half], model(x[:half], training=True))
            poison = model.loss(y[half:], model(x[half:], training=True))
            total = alpha * clean + (1.0 - alpha) * poison
            return total + tf.add_n(model.losses) if model.losses else total

        return constrained_step(model, loss, range(len(model.trainable_variables)), radius)

    return build


def paired(plan: list[NDArray[np.int64]], n: int) -> list[NDArray[np.int64]]:
    """Each batch of rows ``b`` of the first half, followed by the same rows ``b + n`` of the
    second half (a :class:`~common.learning.stages.MixedSteps` batch)."""
    return [np.concatenate([batch, batch + n]) for batch in plan]


def stage_losses(
    model: tf.keras.Model,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    *,
    stages: Sequence[tuple[StepBuilder, int]],
    batch_size: int,
    rng: np.random.Generator,
    masks: Sequence[NDArray[np.floating[Any]]] | None = None,
    pairs: bool = False,
) -> NDArray[np.float32]:
    """Run each ``(step builder, epochs)`` stage from the model's current weights (the anchors
    of the projection) with a fresh optimizer state and the masks (all ones when None); every
    step's loss.

    Every stage shuffles with ``rng`` and keeps the last partial batch, as honest non-private
    training does; with ``pairs`` the plan is drawn over the first half of ``(x, y)`` and
    every batch also takes the same rows of the second (:func:`paired`).
    """
    anchor(model)  # FedProx's w_t when the model has the term
    state = _state(model)
    for variable, source in zip(state.anchors, model.trainable_variables, strict=True):
        variable.assign(source)
    for i, variable in enumerate(state.masks):
        variable.assign(tf.ones_like(variable) if masks is None else masks[i].astype(np.float32))
    losses = [np.zeros(0, np.float32)]
    for builder, epochs in stages:
        reset_optimizer(model)
        n = len(y) // 2 if pairs else len(y)
        plan = batch_plan(
            n,
            batch_size=batch_size,
            epochs=epochs,
            rng=rng,
            sampling="shuffle",
            drop_remainder=False,
        )
        losses.append(run_plan(model, builder, x, y, paired(plan, n) if pairs else plan))
    return np.concatenate(losses)

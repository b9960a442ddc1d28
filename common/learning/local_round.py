"""One client round as ONE compiled TensorFlow function over the whole batch plan.

A Python loop of ``train_on_batch`` calls pays Keras's per-call overhead (a data adapter, a
callback-free ``fit`` step, tensor conversion) at every step: on the quickstart MLP that is most
of a client's round. Here the round's batch plan (:mod:`common.learning.batching`, unchanged)
travels as a flat index vector and its row splits, and a ``tf.function`` runs

    for i in 0..steps-1:   B_i = indices[splits[i] : splits[i+1]]
                           loss_i = step(x[B_i], y[B_i])        (the step updates the weights)

so the same steps, in the same order, on the same batches, update the same variables as before.

Composability: a step is any ``StepFn`` ``(x_batch, y_batch) -> loss`` that applies its own
update. Per-batch input transforms (e.g. adversarial-example mixing) wrap a step:
``lambda x, y: step(*mix(x, y))``. Data-independent loss terms (L2, FedProx's proximal term
mu/2 ||w - w_global||^2) belong in ``model.losses`` (``model.add_loss``): both steps add them,
the DP step unclipped and noise-free, as tensorflow-privacy treats regularisation.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

StepFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
StepBuilder = Callable[[tf.keras.Model], StepFn]
RoundFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]

# One traced round function per cached model and step builder (a poisoner's masked or
# contrastive step is another builder on the same model): tracing costs about a second, a
# round milliseconds.
_ROUNDS: weakref.WeakKeyDictionary[tf.keras.Model, dict[StepBuilder, RoundFn]] = (
    weakref.WeakKeyDictionary()
)


def batch_loss(model: tf.keras.Model, y: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """The compiled loss of a batch plus ``model.losses`` (what Keras's ``train_step`` minimises).

    The loss object's own reduction (mean over the batch), then ``+ sum(model.losses)``: the
    arithmetic of ``compiled_loss`` with one output, without its metric tracker (whose variables
    could not be created inside the round's loop).
    """
    loss = model.loss(y, y_pred)
    if model.losses:
        loss = loss + tf.add_n(model.losses)
    return loss


def sgd_step(model: tf.keras.Model) -> StepFn:
    """Keras's non-private step: forward, :func:`batch_loss`, ``optimizer.minimize``."""

    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = batch_loss(model, y, model(x, training=True))
        model.optimizer.minimize(loss, model.trainable_variables, tape=tape)
        return loss

    return step


def _round_function(model: tf.keras.Model, step: StepFn) -> RoundFn:
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
    index = tf.TensorSpec([None], tf.int64)

    # AutoGraph off: the loop is written as a tf.while_loop, and converting tensorflow-privacy's
    # clipping code took the first trace from 2.4 s to 11 s on the DP MLP.
    @tf.function(input_signature=[spec, index, index, index], autograph=False)  # type: ignore[untyped-decorator]
    def run(x: tf.Tensor, y: tf.Tensor, indices: tf.Tensor, splits: tf.Tensor) -> tf.Tensor:
        steps = tf.shape(splits, out_type=tf.int64)[0] - 1
        losses = tf.TensorArray(tf.float32, size=tf.cast(steps, tf.int32), element_shape=[])

        def body(i: tf.Tensor, losses: tf.TensorArray) -> tuple[tf.Tensor, tf.TensorArray]:
            batch = indices[splits[i] : splits[i + 1]]
            loss = step(tf.gather(x, batch), tf.gather(y, batch))
            return i + 1, losses.write(tf.cast(i, tf.int32), tf.cast(loss, tf.float32))

        _, losses = tf.while_loop(lambda i, _: i < steps, body, (tf.constant(0, tf.int64), losses))
        return losses.stack()

    return run  # type: ignore[no-any-return]


def run_plan(
    model: tf.keras.Model,
    step: StepBuilder,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    plan: Sequence[NDArray[np.int64]],
) -> NDArray[np.float32]:
    """Run every step of ``plan`` in one compiled call; return each step's batch loss.

    ``step`` builds the model's step function (traced once per model and builder, and kept).
    The optimizer is built before the first trace: its slot variables cannot be created inside
    the loop.
    """
    if not plan:
        return np.zeros(0, dtype=np.float32)
    rounds = _ROUNDS.setdefault(model, {})
    run = rounds.get(step)
    if run is None:
        model.optimizer.build(model.trainable_variables)
        run = rounds[step] = _round_function(model, step(model))
    splits = np.zeros(len(plan) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in plan], out=splits[1:])
    losses = run(
        tf.convert_to_tensor(x, tf.float32),
        tf.convert_to_tensor(y, tf.int64),
        tf.convert_to_tensor(np.concatenate(plan).astype(np.int64), tf.int64),
        tf.convert_to_tensor(splits),
    )
    return np.asarray(losses, dtype=np.float32)

"""FedProx's proximal term (Li et al. 2020, "Federated Optimization in Heterogeneous Networks",
MLSys): each client minimises ``F_k(w) + mu/2 ||w - w_t||^2``, w_t the global weights it
received, so local steps are pulled back towards the round's starting point.

The term is a Keras model loss (``model.add_loss``) over the trainable weights and one
non-trainable anchor variable per weight, holding ``w_t``: Keras adds it to the data loss in
every training step, compiled or not, and the anchors are set once per client, after its
weights are loaded (:func:`anchor`). With ``mu = 0`` nothing is added.
"""

from __future__ import annotations

import weakref

import tensorflow as tf

# Kept outside the model: a variable set as a model attribute becomes one of its weights, and
# get_weights() would then send the anchors to the server.
_ANCHORS: weakref.WeakKeyDictionary[tf.keras.Model, list[tf.Variable]] = weakref.WeakKeyDictionary()


def add_proximal_term(model: tf.keras.Model, mu: float) -> None:
    """Add ``mu/2 * sum_j ||w_j - a_j||^2`` over the trainable weights ``w_j`` to ``model``'s
    loss, with anchors ``a_j`` that :func:`anchor` sets to the round's global weights."""
    weights = list(model.trainable_weights)
    anchors = [tf.Variable(tf.identity(w), trainable=False) for w in weights]
    _ANCHORS[model] = anchors

    def proximal() -> tf.Tensor:
        return (mu / 2.0) * tf.add_n(
            [tf.reduce_sum(tf.square(w - a)) for w, a in zip(weights, anchors, strict=True)]
        )

    model.add_loss(proximal)


def anchor(model: tf.keras.Model) -> None:
    """Set the proximal anchors to the model's current weights (the global model just loaded);
    a model without the term is left alone."""
    anchors = _ANCHORS.get(model)
    if anchors is None:
        return
    for variable, weight in zip(anchors, model.trainable_weights, strict=True):
        variable.assign(weight)

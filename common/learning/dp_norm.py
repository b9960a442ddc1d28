"""Fast-clipping norms for ``GroupNormalization``: the registry function tensorflow-privacy lacks.

GroupNorm (Wu & He 2018, arXiv:1803.08494) normalises each example on its own: with the
channels split into G groups, for example i, position t and channel c of group g(c),

    x^_itc = (x_itc - mu_ig) / sqrt(var_ig + eps),     z_itc = gamma_c x^_itc + beta_c

(mu, var over the positions and channels of the group, within example i only). The affine
parameters are shared over the positions, so with D_i = dL/dz_i (T x C):

    dL/dgamma_i[c] = sum_t D_itc x^_itc,      dL/dbeta_i[c] = sum_t D_itc

and ||g_i||^2 is the sum of their squares, from one pass over D and x^ (no per-example weight
copies). The chain rule through mu and var needs nothing here: it reaches the layers *below*
through dL/dx, which the tape propagates as for any layer. tensorflow-privacy 0.9.0's default
registry holds Dense and Embedding; it also ships functions for EinsumDense, LayerNormalization
and MultiHeadAttention, none for GroupNormalization, and its LayerNormalization function does
not apply (it normalises each position over ``layer.axis``, GroupNorm over groups of channels and
all positions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf

from common.errors import ConfigError

SquaredNormFunction = Callable[[tf.Tensor], tf.Tensor]


def normalised_inputs(layer: tf.keras.layers.GroupNormalization, inputs: tf.Tensor) -> tf.Tensor:
    """x^ of the module docstring for a channels-last input, the layer's own moments and eps."""
    channels = int(inputs.shape[-1])
    shape = tf.shape(inputs)
    grouped = tf.reshape(inputs, [shape[0], -1, layer.groups, channels // layer.groups])
    mean, variance = tf.nn.moments(grouped, axes=[1, 3], keepdims=True)
    return tf.reshape((grouped - mean) * tf.math.rsqrt(variance + layer.epsilon), shape)


def group_norm_layer_computation(
    layer_instance: tf.keras.layers.GroupNormalization,
    input_args: Sequence[Any],
    input_kwargs: Mapping[str, Any],
    tape: tf.GradientTape,
    num_microbatches: int | tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor, SquaredNormFunction]:
    """tensorflow-privacy registry function for ``tf.keras.layers.GroupNormalization``.

    Same contract as ``dense_layer_computation``: returns ``(z, z, sqr_norm_fn)`` with z the
    layer's output (watched; GroupNorm has no activation) and ``sqr_norm_fn(dL/dz)`` the
    per-example (per-microbatch: summed over its examples first) squared norm of the gradient
    of gamma and beta.
    """
    if input_kwargs:
        raise ValueError("GroupNormalization layer calls should not receive kwargs.")
    if len(input_args) != 1:
        raise ValueError("Only layer inputs of length 1 are permitted.")
    (inputs,) = input_args
    if layer_instance.axis not in (-1, inputs.shape.rank - 1):
        raise ConfigError(
            f"model layer {layer_instance.name!r}: got axis={layer_instance.axis}; DP fast "
            "clipping supports channels-last GroupNormalization (axis=-1)"
        )
    outputs = layer_instance(inputs)
    tape.watch(outputs)

    def sqr_norm_fn(output_grads: tf.Tensor) -> tf.Tensor:
        channels = int(output_grads.shape[-1])
        rows = num_microbatches if num_microbatches is not None else tf.shape(output_grads)[0]
        # Merging the examples of a microbatch into the position axis sums their gradients.
        grads = tf.reshape(output_grads, [rows, -1, channels])
        squared = tf.zeros([rows], output_grads.dtype)
        if layer_instance.scale:
            normalised = tf.reshape(normalised_inputs(layer_instance, inputs), [rows, -1, channels])
            squared += tf.reduce_sum(tf.square(tf.reduce_sum(grads * normalised, axis=1)), axis=1)
        if layer_instance.center:
            squared += tf.reduce_sum(tf.square(tf.reduce_sum(grads, axis=1)), axis=1)
        return squared

    return outputs, outputs, sqr_norm_fn

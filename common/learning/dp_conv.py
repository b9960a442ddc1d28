"""Fast-clipping norms for ``Conv2D``: the tensorflow-privacy layer-registry function it lacks.

tensorflow-privacy 0.9.0's ``DPSequential`` computes the per-example norms ||g_i|| without
materialising any g_i ("fast gradient clipping", the ghost norm of Goodfellow 2015,
arXiv:1510.01799, and Lee & Kifer 2021, arXiv:2009.03106): each trainable layer's registry
function exposes its pre-activation z = f(x; W) and a function of dL/dz that returns the
per-example squared norm of dL/dW. It ships functions for ``Dense`` and ``Embedding`` only.

For a convolution the kernel acts on the T patches of its input, z_i = P_i W + 1 b^T, with P_i
(T x K) the extracted patches of example i (K = kh * kw * c_in) and W (K x c_out). With
D_i = dL/dz_i (T x c_out):

    dL/dW_i = P_i^T D_i                   (per-example kernel gradient)
    ||P_i^T D_i||_F^2 = <P_i P_i^T, D_i D_i^T>_F     (Gram, "ghost norm")
    dL/db_i = D_i^T 1,   ||dL/db_i||^2 = ||sum_t D_i[t, :]||^2

The Gram form costs O(T^2 (K + c_out)) per example, instantiating P_i^T D_i costs
O(T K c_out); following Bu et al. 2022 ("Scalable and Efficient Training of Large Convolutional
Neural Networks with Differential Privacy", mixed ghost clipping) the cheaper one is chosen per
layer from the static shapes: Gram when T (K + c_out) < K c_out. With microbatches of k examples
the k patch matrices of a microbatch are stacked (T becomes k T), which gives the norm of the
gradient of the microbatch's mean loss, the quantity tensorflow-privacy clips.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import tensorflow as tf
from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry as lr

from common.errors import ConfigError
from common.learning.dp_norm import group_norm_layer_computation

NormMethod = Literal["auto", "gram", "outer"]
SquaredNormFunction = Callable[[tf.Tensor], tf.Tensor]


def factorised_squared_norms(
    inputs: tf.Tensor,
    output_grads: tf.Tensor,
    *,
    use_bias: bool,
    num_microbatches: int | tf.Tensor | None,
    method: NormMethod = "auto",
) -> tf.Tensor:
    """Per-example (or per-microbatch) ||P_i^T D_i||_F^2 (+ ||D_i^T 1||^2 when ``use_bias``).

    ``inputs`` is (batch, ..., K) (patches: T positions of K features each), ``output_grads``
    (batch, ..., c_out) with the same positions. Returns a (batch,) vector, or a
    (num_microbatches,) vector of the squared norms of each microbatch's summed gradient
    (the caller's loss already carries the 1 / k of a microbatch mean). ``method`` ``"gram"``
    uses <P P^T, D D^T>, ``"outer"`` instantiates P^T D, ``"auto"`` picks the cheaper.
    """
    if method not in ("auto", "gram", "outer"):
        raise ConfigError(f"method: got {method!r}; allowed: auto, gram, outer")
    num_features = int(inputs.shape[-1])
    num_outputs = int(output_grads.shape[-1])
    inner = inputs.shape[1:-1]
    # T of one example; unknown spatial shapes (never the case for Conv2D) default to "outer".
    positions = inner.num_elements() if inner.is_fully_defined() else None
    rows = num_microbatches if num_microbatches is not None else tf.shape(inputs)[0]
    # Merging the examples of a microbatch into its position axis sums their gradients.
    patches = tf.reshape(inputs, [rows, -1, num_features])
    grads = tf.reshape(output_grads, [rows, -1, num_outputs])
    if method == "auto":
        # With microbatches the Gram matrices grow k^2-fold while P^T D does not.
        gram_is_cheaper = (
            positions is not None
            and positions * (num_features + num_outputs) < num_features * num_outputs
        )
        method = "gram" if gram_is_cheaper and num_microbatches is None else "outer"
    if method == "gram":
        patch_gram = tf.matmul(patches, patches, transpose_b=True)
        grad_gram = tf.matmul(grads, grads, transpose_b=True)
        squared = tf.reduce_sum(patch_gram * grad_gram, axis=[1, 2])
    else:
        kernel_grads = tf.einsum("btk,btc->bkc", patches, grads)
        squared = tf.reduce_sum(tf.square(kernel_grads), axis=[1, 2])
    if use_bias:
        squared += tf.reduce_sum(tf.square(tf.reduce_sum(grads, axis=1)), axis=1)
    return squared


def conv2d_layer_computation(
    layer_instance: tf.keras.layers.Conv2D,
    input_args: Sequence[Any],
    input_kwargs: Mapping[str, Any],
    tape: tf.GradientTape,
    num_microbatches: int | tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor, SquaredNormFunction]:
    """tensorflow-privacy registry function for ``tf.keras.layers.Conv2D`` (channels_last).

    Same contract as tensorflow-privacy's ``dense_layer_computation``: returns
    ``(z, outputs, sqr_norm_fn)`` where z is the watched pre-activation, outputs =
    activation(z), and ``sqr_norm_fn(dL/dz)`` returns the per-example squared gradient norm of
    the kernel and bias, ||P_i^T D_i||_F^2 + ||D_i^T 1||^2 (see the module docstring).
    """
    if input_kwargs:
        raise ValueError("Conv2D layer calls should not receive kwargs.")
    if len(input_args) != 1:
        raise ValueError("Only layer inputs of length 1 are permitted.")
    _check_conv_supported(layer_instance)
    activation = layer_instance.activation
    # Calling the layer without its activation yields z while keeping Keras' own conv op.
    layer_instance.activation = None
    try:
        pre_activation = layer_instance(*input_args)
    finally:
        layer_instance.activation = activation
    tape.watch(pre_activation)
    outputs = activation(pre_activation) if activation else pre_activation
    (inputs,) = input_args
    kernel_h, kernel_w = layer_instance.kernel_size
    stride_h, stride_w = layer_instance.strides
    rate_h, rate_w = layer_instance.dilation_rate

    def sqr_norm_fn(pre_activation_grads: tf.Tensor) -> tf.Tensor:
        # Patches are (batch, out_h, out_w, kh * kw * c_in): the rows P_i of the conv as matmul.
        patches = tf.image.extract_patches(
            inputs,
            sizes=[1, kernel_h, kernel_w, 1],
            strides=[1, stride_h, stride_w, 1],
            rates=[1, rate_h, rate_w, 1],
            padding=layer_instance.padding.upper(),
        )
        return factorised_squared_norms(
            patches,
            pre_activation_grads,
            use_bias=layer_instance.use_bias,
            num_microbatches=num_microbatches,
        )

    return pre_activation, outputs, sqr_norm_fn


def _check_conv_supported(layer: tf.keras.layers.Conv2D) -> None:
    # extract_patches only matches an ungrouped, channels_last convolution.
    if layer.data_format != "channels_last" or layer.groups != 1:
        raise ConfigError(
            f"model layer {layer.name!r}: got data_format={layer.data_format!r}, "
            f"groups={layer.groups}; DP fast clipping supports channels_last, groups=1"
        )


def dp_layer_registry() -> lr.LayerRegistry:
    """tensorflow-privacy's default registry (Dense, Embedding) plus our Conv2D and GroupNorm."""
    registry = lr.make_default_layer_registry()
    registry.insert(tf.keras.layers.Conv2D, conv2d_layer_computation)
    registry.insert(tf.keras.layers.GroupNormalization, group_norm_layer_computation)
    return registry

"""DP-SGD for honest clients: tensorflow-privacy's DP Keras model with fast gradient clipping.

DP-SGD (Abadi et al. 2016) replaces the mean gradient of a batch B by

    g~ = ( sum_{i in B} g_i * min(1, C / ||g_i||_2)  +  N(0, sigma^2 C^2 I) ) / |B|

where g_i is the gradient of example (or microbatch) i over ALL trainable variables, C is
``l2_norm_clip`` and sigma is ``noise_multiplier``. tensorflow-privacy 0.9.0's ``DPSequential``
computes the norms ||g_i|| without materialising any g_i ("fast gradient clipping", the ghost
norm of Goodfellow 2015, arXiv:1510.01799, and Lee & Kifer 2021, arXiv:2009.03106): each
trainable layer's registry function exposes its pre-activation z = f(x; W) and a function of
dL/dz that returns the per-example squared norm of dL/dW; the clipped sum is then one ordinary
backward pass of the loss re-weighted by min(1, C / ||g_i||).

tensorflow-privacy ships registry functions for ``Dense`` and ``Embedding`` only; this module adds
``Conv2D`` (:func:`conv2d_layer_computation`). For a convolution the kernel acts on the T patches
of its input, z_i = P_i W + 1 b^T, with P_i (T x K) the extracted patches of example i
(K = kh * kw * c_in) and W (K x c_out). With D_i = dL/dz_i (T x c_out):

    dL/dW_i = P_i^T D_i                   (per-example kernel gradient)
    ||P_i^T D_i||_F^2 = <P_i P_i^T, D_i D_i^T>_F     (Gram, "ghost norm")
    dL/db_i = D_i^T 1,   ||dL/db_i||^2 = ||sum_t D_i[t, :]||^2

The Gram form costs O(T^2 (K + c_out)) per example, instantiating P_i^T D_i costs
O(T K c_out); following Bu et al. 2022 ("Scalable and Efficient Training of Large Convolutional
Neural Networks with Differential Privacy", mixed ghost clipping) the cheaper one is chosen per
layer from the static shapes: Gram when T (K + c_out) < K c_out. With microbatches of k examples
the k patch matrices of a microbatch are stacked (T becomes k T), which gives the norm of the
gradient of the microbatch's mean loss, the quantity tensorflow-privacy clips.

If a trainable layer has no registry function, ``DPSequential`` silently falls back to the
vectorised per-example path (3-20x slower). :func:`build_dp_model` refuses that instead.

Under Poisson sampling the step must divide by the expected batch size b, not by the random
|B| (which depends on the data): :class:`PoissonDPSequential` does that and turns an empty
batch into a noise-only step, so the released updates are exactly the subsampled Gaussian
mechanism the accountant composes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import tensorflow as tf
from tensorflow_privacy.privacy.fast_gradient_clipping import clip_grads
from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry as lr
from tensorflow_privacy.privacy.keras_models.dp_keras_model import DPSequential

from common.errors import ConfigError

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
    """tensorflow-privacy's default registry (Dense, Embedding) plus our Conv2D function."""
    registry = lr.make_default_layer_registry()
    registry.insert(tf.keras.layers.Conv2D, conv2d_layer_computation)
    return registry


class PoissonDPSequential(DPSequential):  # type: ignore[misc]
    """``DPSequential`` whose step is normalised by the EXPECTED batch size b, not by |B|.

    Under Poisson sampling |B| is random and depends on the data, so tensorflow-privacy's
    (sum + noise) / |B| is not the mechanism the subsampled-Gaussian analysis covers. This step
    releases

        g~ = ( sum_{i in B} clip_C(g_i) + N(0, sigma^2 C^2 I) ) / b,      b = q n,

    the form Abadi et al. 2016 analyse and Opacus uses for Poisson batches. An empty batch is a
    noise-only step (the accountant counts it), so the training loop may feed it as is.
    One example per microbatch only: a Poisson batch cannot be split into equal microbatches.
    """

    def __init__(self, *, expected_batch_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._expected_batch_size = float(expected_batch_size)
        # The noise comes from an explicit generator that training reseeds for every client
        # round (``reseed_noise``): a stateful op inside the traced step would keep its own
        # state across the clients an actor serves, so results would depend on actor history.
        self.noise_generator = tf.random.Generator.from_seed(0)

    def reseed_noise(self, seed: int) -> None:
        """Restart the DP noise stream at ``seed`` (called before each client's local training)."""
        self.noise_generator.reset_from_seed(seed)

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        if self._clipping_loss is None:
            self._make_clipping_loss()
        x, y, weights = tf.keras.utils.unpack_x_y_sample_weight(data)
        batch = tf.shape(y)[0]

        def clipped_sum() -> tuple[list[tf.Tensor], tf.Tensor]:
            clipped_mean, y_pred, _ = clip_grads.compute_clipped_gradients_and_outputs(
                input_model=self,
                x_batch=x,
                y_batch=y,
                weight_batch=weights,
                l2_norm_clip=self._l2_norm_clip,
                layer_registry=self._layer_registry,
                num_microbatches=None,
                clipping_loss=self._clipping_loss,
            )
            # The clipping loss is a mean over |B|: times |B| gives the sum of clipped g_i.
            size = tf.cast(batch, clipped_mean[0].dtype)
            return [g * size for g in clipped_mean], y_pred

        def empty() -> tuple[list[tf.Tensor], tf.Tensor]:
            # Neither the norm code nor TF's CPU conv kernels accept a zero-row batch; the sum of
            # no gradients is zero and there are no predictions to score.
            zeros = [tf.zeros_like(v) for v in self.trainable_variables]
            return zeros, tf.zeros([0, *self.output_shape[1:]], dtype=self.output.dtype)

        summed, y_pred = tf.cond(batch > 0, clipped_sum, empty)
        stddev = self._noise_multiplier * self._l2_norm_clip
        grads = [
            (g + self.noise_generator.normal(tf.shape(g), stddev=stddev) if stddev > 0 else g)
            / self._expected_batch_size
            for g in summed
        ]
        if (
            self.losses
        ):  # weight decay: data-independent, added unclipped as tensorflow-privacy does
            with tf.GradientTape() as tape:
                regularization = tf.add_n(self.losses)
            extra = tape.gradient(
                regularization,
                self.trainable_variables,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            grads = [g + r for g, r in zip(grads, extra, strict=True)]
        self.compiled_loss(y, y_pred, sample_weight=weights, regularization_losses=self.losses)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        self.compiled_metrics.update_state(y, y_pred)
        return {metric.name: metric.result() for metric in self.metrics}


def build_dp_model(
    layers: Sequence[tf.keras.layers.Layer],
    *,
    l2_norm_clip: float,
    noise_multiplier: float,
    num_microbatches: int | None,
    expected_batch_size: int | None = None,
) -> tf.keras.Model:
    """An uncompiled DP Keras model over ``layers`` that is guaranteed to use fast clipping.

    ``expected_batch_size`` b set (Poisson sampling): a :class:`PoissonDPSequential`, whose step
    divides by b and accepts empty batches, the mechanism the Poisson accountant covers.
    Unset (shuffle sampling, fixed |B| = b): tensorflow-privacy's ``DPSequential``, which divides
    by |B| and supports ``num_microbatches``.
    Compile it with a standard optimizer and a *reduced* ``tf.keras.losses.Loss`` instance (not a
    string): the per-example losses are obtained by switching that instance's reduction off.
    XLA is off: on CPU it compiles for seconds and the train step is already a ``tf.function``.
    Raises :class:`ConfigError` when a trainable layer has no registry function.
    """
    if l2_norm_clip <= 0:
        raise ConfigError(f"dp.l2_norm_clip: got {l2_norm_clip!r}; must be > 0")
    if noise_multiplier < 0:
        raise ConfigError(f"dp.noise_multiplier: got {noise_multiplier!r}; must be >= 0")
    if num_microbatches is not None and num_microbatches < 1:
        raise ConfigError(f"dp.num_microbatches: got {num_microbatches!r}; must be >= 1")
    common: dict[str, Any] = {
        "l2_norm_clip": l2_norm_clip,
        "noise_multiplier": noise_multiplier,
        "num_microbatches": num_microbatches,
        "use_xla": False,
        "layer_registry": dp_layer_registry(),
        "layers": list(layers),
    }
    if expected_batch_size is None:
        model = DPSequential(**common)
    elif expected_batch_size < 1:
        raise ConfigError(f"train.batch_size: got {expected_batch_size!r}; must be >= 1")
    elif num_microbatches is not None:
        raise ConfigError(
            f"dp.num_microbatches: got {num_microbatches!r}; must be unset with Poisson batches"
        )
    else:
        model = PoissonDPSequential(expected_batch_size=expected_batch_size, **common)
    assert_fast_clipping(model)
    return model


def assert_fast_clipping(model: tf.keras.Model) -> None:
    """Raise :class:`ConfigError` unless ``model`` trains with fast per-example clipping.

    tensorflow-privacy decides once, in the constructor, and falls back silently; this turns
    the fallback into a one-line error naming the layers that have no registry function.
    """
    if getattr(model, "_enable_fast_peg_computation", False):
        return
    registry: lr.LayerRegistry | None = getattr(model, "_layer_registry", None)
    if registry is None:
        raise ConfigError(
            f"model {model.name!r}: not a DP Keras model with a layer registry; "
            "build it with common.learning.dp.build_dp_model"
        )
    missing = [
        f"{layer.name} ({type(layer).__name__})"
        for layer in model.layers
        if layer.trainable_variables and not registry.is_elem(layer)
    ]
    if missing:
        raise ConfigError(
            f"model layers: got {', '.join(missing)}; DP fast clipping supports trainable "
            "Dense, Embedding and Conv2D layers only"
        )
    raise ConfigError(
        f"model {model.name!r}: has no built layer graph; give an InputLayer first so "
        "fast clipping can trace it"
    )

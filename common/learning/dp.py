"""DP-SGD for honest clients: tensorflow-privacy's DP Keras model with fast gradient clipping.

DP-SGD (Abadi et al. 2016) replaces the mean gradient of a batch B by

    g~ = ( sum_{u in B} clip_C(g_u)  +  N(0, sigma^2 C^2 I) ) / D

where g_u is the gradient of example (or microbatch) u over ALL trainable variables,
clip_C(g) = g * min(1, C / ||g||_2), C is ``l2_norm_clip`` and sigma is ``noise_multiplier``.
The per-example norms come from tensorflow-privacy's fast clipping (``DPSequential`` and the
layer registry of :mod:`common.learning.dp_conv`). If a trainable layer has no registry function,
``DPSequential`` silently falls back to the vectorised per-example path (3-20x slower);
:func:`build_dp_model` refuses that instead.

The divisor D: under Poisson sampling |B| is random and depends on the data, so the step divides
by the EXPECTED batch size b and an empty batch is a noise-only step: exactly the subsampled
Gaussian mechanism the accountant composes (the form Abadi et al. analyse and Opacus uses).
Under shuffle sampling D is the number of clipped units of the fixed-size batch (|B|, or the
microbatch count), which is tensorflow-privacy's own step.

The noise: tensorflow-privacy draws it with the stateful ``tf.random.normal``, whose stream the
global TF seed fixes, i.e. whoever knows the seed (the server sends it) can regenerate it and
subtract it. :class:`SecretNoiseDPSequential` draws it from its own ``tf.random.Generator``, whose
state the caller sets before every client round (``reseed_noise``) from OS entropy
(:func:`common.learning.training.dp_seed_sequence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow_privacy.privacy.fast_gradient_clipping import clip_grads
from tensorflow_privacy.privacy.fast_gradient_clipping import gradient_clipping_utils as gcu
from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry as lr
from tensorflow_privacy.privacy.keras_models.dp_keras_model import DPSequential

from common.errors import ConfigError
from common.learning.dp_conv import dp_layer_registry
from common.learning.local_round import batch_loss


class SecretNoiseDPSequential(DPSequential):  # type: ignore[misc]
    """``DPSequential`` with noise from a reseedable generator and the divisor D of the module doc.

    ``expected_batch_size`` b set (Poisson): D = b and an empty batch is a noise-only step (the
    accountant counts it), so the training loop feeds it as is; one example per microbatch only
    (a Poisson batch cannot be split into equal microbatches). Unset (shuffle): D = the number of
    microbatches of the batch (|B| without microbatching), as tensorflow-privacy divides.
    """

    def __init__(self, *, expected_batch_size: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._expected_batch_size = expected_batch_size
        # An explicit generator, not the stateful op: its state is set per client round, so the
        # noise depends neither on the TF seed nor on which clients the actor served before.
        self.noise_generator = tf.random.Generator.from_seed(0)

    def reseed_noise(self, source: np.random.SeedSequence) -> None:
        """Set the whole 192-bit Philox state (counter and key) of the noise from ``source``."""
        self.noise_generator.reset(source.generate_state(3, np.uint64).view(np.int64))

    def _clipped_sum(self, x: Any, y: tf.Tensor, weights: Any) -> tuple[list[tf.Tensor], Any]:
        units = self._num_microbatches or tf.shape(y)[0]

        def clipped_sum() -> tuple[list[tf.Tensor], tf.Tensor]:
            clipped_mean, y_pred, _ = clip_grads.compute_clipped_gradients_and_outputs(
                input_model=self,
                x_batch=x,
                y_batch=y,
                weight_batch=weights,
                l2_norm_clip=self._l2_norm_clip,
                layer_registry=self._layer_registry,
                num_microbatches=self._num_microbatches,
                clipping_loss=self._clipping_loss,
            )
            # The clipping loss is a mean over the units: times their count gives the sum.
            size = tf.cast(units, clipped_mean[0].dtype)
            return [g * size for g in clipped_mean], y_pred

        def empty() -> tuple[list[tf.Tensor], tf.Tensor]:
            # Neither the norm code nor TF's CPU conv kernels accept a zero-row batch; the sum of
            # no gradients is zero and there are no predictions to score.
            zeros = [tf.zeros_like(v) for v in self.trainable_variables]
            return zeros, tf.zeros([0, *self.output_shape[1:]], dtype=self.output.dtype)

        summed, y_pred = tf.cond(tf.shape(y)[0] > 0, clipped_sum, empty)
        divisor = self._expected_batch_size or tf.cast(units, summed[0].dtype)
        stddev = self._noise_multiplier * self._l2_norm_clip
        noisy = [
            (g + self.noise_generator.normal(tf.shape(g), stddev=stddev) if stddev > 0 else g)
            / divisor
            for g in summed
        ]
        return noisy, y_pred

    def _private_gradients(self, x: Any, y: tf.Tensor, weights: Any) -> tuple[list[Any], Any]:
        """g~ plus the unclipped gradient of ``self.losses``, and the batch's predictions."""
        if self._clipping_loss is None:
            self._make_clipping_loss()
        grads, y_pred = self._clipped_sum(x, y, weights)
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
        return grads, y_pred

    def private_step(self, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        """One DP-SGD step as a :data:`common.learning.local_round.StepFn`; returns the loss."""
        grads, y_pred = self._private_gradients(x, y, None)
        loss = batch_loss(self, y, y_pred)  # before the update, as ``train_step`` reports it
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        return loss

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, y, weights = tf.keras.utils.unpack_x_y_sample_weight(data)
        grads, y_pred = self._private_gradients(x, y, weights)
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

    A :class:`SecretNoiseDPSequential`. ``expected_batch_size`` b set (Poisson sampling): the
    step divides by b and accepts empty batches, the mechanism the Poisson accountant covers.
    Unset (shuffle sampling, fixed |B| = b): it divides by the number of clipped units and
    supports ``num_microbatches``. Set the noise state with ``reseed_noise`` before training.
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
    if expected_batch_size is not None and expected_batch_size < 1:
        raise ConfigError(f"train.batch_size: got {expected_batch_size!r}; must be >= 1")
    if expected_batch_size is not None and num_microbatches is not None:
        raise ConfigError(
            f"dp.num_microbatches: got {num_microbatches!r}; must be unset with Poisson batches"
        )
    model = SecretNoiseDPSequential(expected_batch_size=expected_batch_size, **common)
    assert_fast_clipping(model)
    return model


def assert_fast_clipping(model: tf.keras.Model) -> None:
    """Raise :class:`ConfigError` unless ``model`` trains with fast per-example clipping.

    tensorflow-privacy decides once, in the constructor, and falls back silently; this turns
    the fallback into a one-line error naming the layers that have no registry function. Its
    decision looks at the top-level layers only, while its forward pass walks into nested
    functional models (ResNet blocks): the layers checked here are the ones that pass visits,
    and a model whose every one is registered is switched to the fast path.
    """
    registry: lr.LayerRegistry | None = getattr(model, "_layer_registry", None)
    if registry is None:
        raise ConfigError(
            f"model {model.name!r}: not a DP Keras model with a layer registry; "
            "build it with common.learning.dp.build_dp_model"
        )
    missing = [
        f"{layer.name} ({type(layer).__name__})"
        for layer in _visited_layers(model)
        if layer.trainable_variables and not registry.is_elem(layer)
    ]
    if missing:
        raise ConfigError(
            f"model layers: got {', '.join(missing)}; DP fast clipping supports trainable "
            "Dense, Embedding, Conv2D and GroupNormalization layers only"
        )
    if not gcu.has_internal_compute_graph(model):
        raise ConfigError(
            f"model {model.name!r}: has no built layer graph; give an InputLayer first so "
            "fast clipping can trace it"
        )
    model._enable_fast_peg_computation = True


def _visited_layers(model: tf.keras.Model) -> list[tf.keras.layers.Layer]:
    """The layers tensorflow-privacy's ``model_forward_pass`` hands to the registry."""
    leaves: list[tf.keras.layers.Layer] = []
    for layer in model.layers:
        nested = gcu.has_internal_compute_graph(layer)
        leaves.extend(_visited_layers(layer) if nested else [layer])
    return leaves

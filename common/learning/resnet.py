"""ResNet-20 for CIFAR (He et al. 2016, arXiv:1512.03385, section 4.2) with GroupNorm.

The paper's CIFAR network: a 3x3 convolution with 16 filters, then 3 stages of n = 3 basic
blocks (two 3x3 convolutions each) on 16, 32 and 64 filters, the first block of stages 2 and 3
halving the map with stride 2, then global average pooling and a dense softmax: 6n + 2 = 20
weighted layers. A block computes

    y = ReLU( GN(conv(ReLU(GN(conv(x))))) + shortcut(x) )

Shortcuts are the paper's option A ("identity shortcuts in all cases", section 4.2): identity
within a stage and, where the shape changes, the input subsampled by 2 with its new channels
zero-padded. Option A adds no parameters, so the count is the paper's 0.27M, and a parameter-free
shortcut has no per-example gradient to bound under DP-SGD.

BatchNorm is replaced by GroupNorm (Wu & He 2018, arXiv:1803.08494): BatchNorm mixes the examples
of a batch, so an example's gradient depends on the others and per-example clipping bounds
nothing. ``groups = min(32, channels)`` is Opacus's BatchNorm-to-GroupNorm replacement
(``ModuleValidator.fix``); GroupNorm's gamma and beta have the count of BatchNorm's trainable
parameters. Convolutions carry no bias, as in the paper: the normalisation that follows
subtracts a per-group mean, which absorbs most of it.

Each block is a nested functional ``tf.keras.Model``: the network stays a list of layers for
``Sequential``/``DPSequential``, and tensorflow-privacy's fast clipping walks into a nested
functional graph (``gradient_clipping_utils.model_forward_pass``), so every convolution and
GroupNorm of a block gets its own registry function.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

BLOCKS_PER_STAGE = 3
STAGE_FILTERS = (16, 32, 64)


class ChannelPadShortcut(tf.keras.layers.Layer):  # type: ignore[misc]
    """Option-A shortcut: ``x[:, ::s, ::s, :]`` with ``extra`` zero channels split on both sides."""

    def __init__(self, stride: int, extra: int, **kwargs: Any) -> None:
        super().__init__(trainable=False, **kwargs)
        self.stride = stride
        self.extra = extra

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        subsampled = inputs[:, :: self.stride, :: self.stride, :]
        before = self.extra // 2
        return tf.pad(subsampled, [[0, 0], [0, 0], [0, 0], [before, self.extra - before]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "stride": self.stride, "extra": self.extra}


def _conv(filters: int, stride: int, l2: tf.keras.regularizers.Regularizer | None) -> Any:
    return tf.keras.layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False, kernel_regularizer=l2
    )


def group_norm(channels: int) -> tf.keras.layers.GroupNormalization:
    """GroupNorm with Opacus's ``min(32, channels)`` groups, normalising channels_last maps."""
    return tf.keras.layers.GroupNormalization(groups=min(32, channels), axis=-1)


def basic_block(
    input_shape: tuple[int, ...],
    filters: int,
    stride: int,
    l2: tf.keras.regularizers.Regularizer | None,
    name: str,
) -> tf.keras.Model:
    """One basic block as a functional model from ``input_shape`` (channels last)."""
    inputs = tf.keras.Input(shape=input_shape)
    x = _conv(filters, stride, l2)(inputs)
    x = tf.keras.layers.ReLU()(group_norm(filters)(x))
    x = group_norm(filters)(_conv(filters, 1, l2)(x))
    shortcut = inputs
    if stride != 1 or input_shape[-1] != filters:
        shortcut = ChannelPadShortcut(stride, filters - input_shape[-1])(inputs)
    outputs = tf.keras.layers.ReLU()(tf.keras.layers.Add()([x, shortcut]))
    return tf.keras.Model(inputs, outputs, name=name)


def resnet20_layers(
    input_shape: tuple[int, ...],
    num_classes: int,
    l2: tf.keras.regularizers.Regularizer | None,
) -> list[tf.keras.layers.Layer]:
    """The ResNet-20 of the module docstring as a layer list (input layer first)."""
    layers: list[tf.keras.layers.Layer] = [
        tf.keras.layers.InputLayer(input_shape=input_shape),
        _conv(STAGE_FILTERS[0], 1, l2),
        group_norm(STAGE_FILTERS[0]),
        tf.keras.layers.ReLU(),
    ]
    height, width, channels = input_shape[0], input_shape[1], STAGE_FILTERS[0]
    for stage, filters in enumerate(STAGE_FILTERS):
        for block in range(BLOCKS_PER_STAGE):
            stride = 2 if stage > 0 and block == 0 else 1
            shape = (height, width, channels if block == 0 else filters)
            layers.append(basic_block(shape, filters, stride, l2, f"stage{stage + 1}_{block + 1}"))
            height, width = -(-height // stride), -(-width // stride)  # "same": ceil(h / s)
        channels = filters
    layers += [
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(num_classes, activation="softmax", kernel_regularizer=l2),
    ]
    return layers

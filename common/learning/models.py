"""Model registry: Keras 2 (``tf.keras``) architectures for image classification.

A registered model is a factory that returns the *list of layers* (input layer first), so the
same architecture can be wrapped in a plain ``tf.keras.Sequential`` or in tensorflow-privacy's
``DPSequential`` (fast gradient clipping) without a near-copy of the architecture.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from common.errors import ConfigError
from common.learning.resnet import resnet20_layers
from common.registry import NoParams, Registry

LayerFactory = Callable[[tuple[int, ...], int, float], list[tf.keras.layers.Layer]]

MODELS: Registry[LayerFactory] = Registry("model")


def _l2(factor: float) -> tf.keras.regularizers.Regularizer | None:
    # L2 weight decay is the "regularization" defense of the seed text; 0 disables it.
    return tf.keras.regularizers.L2(factor) if factor > 0 else None


@MODELS.register("mlp", NoParams)
def mlp_layers(
    input_shape: tuple[int, ...], num_classes: int, l2: float
) -> list[tf.keras.layers.Layer]:
    """Multilayer perceptron: Flatten -> Dense(64, ReLU) -> Dense(classes, softmax)."""
    return [
        tf.keras.layers.InputLayer(input_shape=input_shape),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(64, activation="relu", kernel_regularizer=_l2(l2)),
        tf.keras.layers.Dense(num_classes, activation="softmax", kernel_regularizer=_l2(l2)),
    ]


@MODELS.register("mlp_small", NoParams)
def small_mlp_layers(
    input_shape: tuple[int, ...], num_classes: int, l2: float
) -> list[tf.keras.layers.Layer]:
    """A quarter-size MLP (Dense(16)): the default distillation student (1,210 weights on 8x8)."""
    return [
        tf.keras.layers.InputLayer(input_shape=input_shape),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(16, activation="relu", kernel_regularizer=_l2(l2)),
        tf.keras.layers.Dense(num_classes, activation="softmax", kernel_regularizer=_l2(l2)),
    ]


@MODELS.register("cnn", NoParams)
def cnn_layers(
    input_shape: tuple[int, ...], num_classes: int, l2: float
) -> list[tf.keras.layers.Layer]:
    """Small CNN: Conv(16,3x3) -> MaxPool(2) -> Conv(32,3x3) -> Flatten -> Dense(classes).

    Sized for 8x8 digits and still valid for 28x28 and 32x32 inputs (``padding="same"``).
    """
    return [
        tf.keras.layers.InputLayer(input_shape=input_shape),
        tf.keras.layers.Conv2D(
            16, 3, padding="same", activation="relu", kernel_regularizer=_l2(l2)
        ),
        tf.keras.layers.MaxPooling2D(2),
        tf.keras.layers.Conv2D(
            32, 3, padding="same", activation="relu", kernel_regularizer=_l2(l2)
        ),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(num_classes, activation="softmax", kernel_regularizer=_l2(l2)),
    ]


@MODELS.register("lenet5", NoParams)
def lenet5_layers(
    input_shape: tuple[int, ...], num_classes: int, l2: float
) -> list[tf.keras.layers.Layer]:
    """LeNet-5 (LeCun et al. 1998): Conv(6,5x5) -> AvgPool(2) -> Conv(16,5x5) -> AvgPool(2)
    -> Dense(120) -> Dense(84) -> Dense(classes).

    ReLU instead of the paper's scaled tanh, as in modern reimplementations; the first
    convolution pads ``"same"`` so 28x28 inputs keep the paper's 32x32 geometry (5x5 maps
    before the dense layers at 28x28, 6x6 at 32x32). Inputs must be at least 12x12 (the
    second convolution and pooling need a 6x6 map); smaller ones are refused in one line.
    """
    if min(input_shape[:2]) < 12:
        raise ConfigError(
            f"model.name: got 'lenet5' for {input_shape[0]}x{input_shape[1]} inputs; LeNet-5 "
            "needs images of at least 12x12 (use mlp or cnn for digits)"
        )
    return [
        tf.keras.layers.InputLayer(input_shape=input_shape),
        tf.keras.layers.Conv2D(6, 5, padding="same", activation="relu", kernel_regularizer=_l2(l2)),
        tf.keras.layers.AveragePooling2D(2),
        tf.keras.layers.Conv2D(16, 5, activation="relu", kernel_regularizer=_l2(l2)),
        tf.keras.layers.AveragePooling2D(2),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(120, activation="relu", kernel_regularizer=_l2(l2)),
        tf.keras.layers.Dense(84, activation="relu", kernel_regularizer=_l2(l2)),
        tf.keras.layers.Dense(num_classes, activation="softmax", kernel_regularizer=_l2(l2)),
    ]


@MODELS.register("resnet20", NoParams)
def resnet20(
    input_shape: tuple[int, ...], num_classes: int, l2: float
) -> list[tf.keras.layers.Layer]:
    """ResNet-20 (He et al. 2016) for CIFAR with GroupNorm instead of BatchNorm (DP-SGD ready).

    3 stages of 3 basic blocks on 16/32/64 filters, option-A shortcuts
    (:mod:`common.learning.resnet`): 269,722 weights at 32x32x3 and 10 classes, 269,434 at
    28x28x1 (the 3x3 stem sees 1 channel).
    """
    return resnet20_layers(input_shape, num_classes, _l2(l2))


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, *, l2: float = 0.0
) -> tf.keras.Sequential:
    """Build the (uncompiled) registered model ``name``."""
    return tf.keras.Sequential(MODELS[name].target(input_shape, num_classes, l2))

"""MI-FACE (Fredrikson et al. 2015) on a trained digits model: the attacker holds only the model."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from common.data.shards import dataset_of
from common.learning.models import build_model
from common.schema import Scenario
from server.inversion.class_inversion import mi_face
from server.inversion.quality import ssim


def test_mi_face_finds_an_image_the_model_is_sure_of() -> None:
    dataset = dataset_of(Scenario.model_validate({"name": "mi", "seed": 1, "rounds": 1}))
    tf.keras.utils.set_random_seed(0)
    model = build_model("mlp", dataset.input_shape, dataset.num_classes)
    model.compile(
        optimizer=tf.keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy"
    )
    model.fit(dataset.x_train, dataset.y_train, epochs=10, batch_size=32, verbose=0)
    start = float(model(np.zeros((1, *dataset.input_shape), np.float32))[0, 0])
    image, confidence = mi_face(model, 0, iterations=200, learning_rate=0.1, data_range=(0.0, 1.0))
    assert start < 0.5 < 0.99 < confidence  # from an unsure start to a confident "0"
    assert abs(float(model(image[None])[0, 0]) - confidence) < 1e-5  # of the image returned
    assert image.min() >= 0.0 and image.max() <= 1.0  # projected into the data range
    zeros_mean = dataset.x_train[dataset.y_train == 0].mean(axis=0)
    # It looks more like the class's mean image than the blank start does.
    assert ssim(image, zeros_mean) > ssim(np.zeros_like(image), zeros_mean) + 0.1

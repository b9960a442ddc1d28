"""Centralised evaluation of the global model on the held-out test set, every round.

Besides clean accuracy and loss it measures the attack success rate when the scenario's attack
defines a success set (a triggered copy of the test set for a backdoor, the source class for a
targeted label flip), so both numbers are always read from the same model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.data.datasets import Dataset
from common.learning.models import build_model


class Evaluator:
    """Holds one compiled server-side model and the evaluation sets."""

    def __init__(
        self,
        *,
        model_name: str,
        dataset: Dataset,
        success_set: tuple[NDArray[np.float32], NDArray[np.int64]] | None,
        batch_size: int = 256,
    ) -> None:
        self.model = build_model(model_name, dataset.input_shape, dataset.num_classes)
        self.model.compile(
            loss=tf.keras.losses.SparseCategoricalCrossentropy(),
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        self.dataset = dataset
        self.success_set = success_set
        self.batch_size = batch_size

    def evaluate(self, weights: Sequence[NDArray[np.float32]]) -> dict[str, float]:
        """``accuracy`` and ``loss`` on the test set; ``attack_success_rate`` when defined.

        Non-finite weights (a NaN-injection attack that got through) are reported as accuracy 0
        and loss NaN instead of crashing the run.
        """
        if not all(np.isfinite(w).all() for w in weights):
            result = {"accuracy": 0.0, "loss": float("nan")}
            if self.success_set is not None:
                result["attack_success_rate"] = float("nan")
            return result
        self.model.set_weights(list(weights))
        loss, accuracy = self.model.evaluate(
            self.dataset.x_test, self.dataset.y_test, batch_size=self.batch_size, verbose=0
        )
        result = {"accuracy": float(accuracy), "loss": float(loss)}
        if self.success_set is not None:
            x, y_target = self.success_set
            predicted = np.argmax(
                self.model.predict(x, batch_size=self.batch_size, verbose=0), axis=1
            )
            result["attack_success_rate"] = float(np.mean(predicted == y_target))
        return result

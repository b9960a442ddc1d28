"""Threshold membership inference: golden ROC figures, chance untrained, leak when overfit."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from common.errors import ConfigError
from common.learning.models import build_model
from server.membership_inference import membership_inference
from tests.dp._data import Digits


def _identity_model(num_classes: int) -> tf.keras.Model:
    # Its input rows are already probability vectors, so the scores are hand-computable.
    return tf.keras.Sequential(
        [
            tf.keras.layers.InputLayer(input_shape=(num_classes,)),
            tf.keras.layers.Lambda(lambda t: t),
        ]
    )


def test_golden_auc_and_advantage() -> None:
    # True-class probabilities: members 0.9, 0.8; non-members 0.85, 0.1.
    # AUC = P(member scores higher) = (1 + 1 + 0 + 1) / 4 = 0.75;
    # Adv = max(TPR - FPR) = 0.5 (at tau = 0.9: 0.5 - 0; at tau = 0.8: 1 - 0.5).
    members = (np.array([[0.9, 0.1], [0.2, 0.8]], np.float32), np.array([0, 1]))
    non_members = (np.array([[0.15, 0.85], [0.1, 0.9]], np.float32), np.array([1, 0]))
    for array in (*members, *non_members):
        array.setflags(write=False)
    result = membership_inference(_identity_model(2), members, non_members)
    assert result == {"auc": 0.75, "advantage": 0.5, "num_members": 2, "num_non_members": 2}
    # The label-free confidence signal sees max p: members 0.9, 0.8; non-members 0.85, 0.9.
    confidence = membership_inference(_identity_model(2), members, non_members, signal="confidence")
    assert confidence["auc"] == pytest.approx((0.5 + 1 + 0 + 0) / 4)


def test_untrained_model_is_at_chance(digits: Digits) -> None:
    x, y = digits
    tf.keras.utils.set_random_seed(0)
    model = build_model("mlp", (8, 8, 1), 10)
    result = membership_inference(model, (x[:400], y[:400]), (x[400:1200], y[400:1200]), seed=3)
    # Balanced by subsampling the 800 non-members to 400.
    assert (result["num_members"], result["num_non_members"]) == (400, 400)
    # AUC standard error with 400 + 400 is about 0.02: 0.08 is 4 of them.
    assert abs(result["auc"] - 0.5) < 0.08
    assert result["advantage"] < 0.15


def test_overfit_model_leaks_membership(digits: Digits) -> None:
    x, y = digits
    members, non_members = (x[:100], y[:100]), (x[1000:1100], y[1000:1100])
    tf.keras.utils.set_random_seed(0)
    model = build_model("mlp", (8, 8, 1), 10)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(0.01),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(),
    )
    model.fit(*members, epochs=300, batch_size=100, verbose=0)
    # Measured: loss AUC 0.848, advantage 0.69; confidence AUC 0.845 (chance: 0.5 and 0).
    loss_attack = membership_inference(model, members, non_members)
    assert loss_attack["auc"] > 0.75 and loss_attack["advantage"] > 0.4
    assert membership_inference(model, members, non_members, signal="confidence")["auc"] > 0.75


def test_bad_arguments_raise_config_error(digits: Digits) -> None:
    x, y = digits
    model = _identity_model(2)
    with pytest.raises(ConfigError, match=r"^signal: got 'entropy'; allowed: loss, confidence$"):
        membership_inference(model, (x[:2], y[:2]), (x[:2], y[:2]), signal="entropy")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="got an empty set"):
        membership_inference(model, (x[:0], y[:0]), (x[:2], y[:2]))

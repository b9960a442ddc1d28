"""WAFFLE watermark on a small MLP trained on sklearn digits (a few seconds in all)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from common.errors import ConfigError
from common.learning.models import build_model
from server.integrity.checkpoint import save_checkpoint
from server.integrity.watermark import (
    WatermarkKey,
    embed,
    verify_watermark,
    watermark_accuracy,
)

KEY = WatermarkKey(seed=123, num_triggers=100, input_shape=(8, 8, 1), num_classes=10,
                   model_name="mlp")  # fmt: skip


def _trained_mlp(seed: int) -> tf.keras.Model:
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    tf.keras.utils.set_random_seed(seed)
    model = build_model("mlp", (8, 8, 1), 10)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, digits.target, epochs=5, batch_size=64, verbose=0)
    assert model.evaluate(images, digits.target, verbose=0)[1] > 0.8  # it did learn digits
    return model


def test_trigger_set_is_deterministic_balanced_and_in_range() -> None:
    images, labels = KEY.trigger_set()
    again, again_labels = KEY.trigger_set()
    assert images.shape == (100, 8, 8, 1) and images.dtype == np.float32
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert np.bincount(labels).tolist() == [10] * 10
    other, _ = KEY.model_copy(update={"seed": 124}).trigger_set()
    assert not np.allclose(images, other)
    # Same-class triggers share the pattern: closer to each other than to other classes.
    flat = images.reshape(100, -1)
    same = np.linalg.norm(flat[0] - flat[10])
    different = np.linalg.norm(flat[0] - flat[1])
    assert same < different


def test_key_round_trip_and_malformed_key(tmp_path: Path) -> None:
    KEY.save(tmp_path / "key.json")
    assert WatermarkKey.load(tmp_path / "key.json") == KEY
    (tmp_path / "bad.json").write_text('{"seed": -1}')
    with pytest.raises(ConfigError, match="seed"):
        WatermarkKey.load(tmp_path / "bad.json")


def test_embedded_watermark_verifies_only_on_the_owners_model(tmp_path: Path) -> None:
    owner = _trained_mlp(0)
    before = watermark_accuracy(owner, KEY)
    epochs = embed(owner, KEY, max_epochs=30, target_accuracy=0.98, learning_rate=0.05)
    assert 1 <= epochs <= 30
    assert watermark_accuracy(owner, KEY) >= 0.98 > before
    # Already watermarked: no further retraining.
    assert embed(owner, KEY, max_epochs=30, target_accuracy=0.98, learning_rate=0.05) == 0

    independent = _trained_mlp(1)
    KEY.save(tmp_path / "key.json")
    save_checkpoint(tmp_path / "owner.npz", owner.get_weights())
    save_checkpoint(tmp_path / "independent.npz", independent.get_weights())
    owned, owner_accuracy = verify_watermark(tmp_path / "owner.npz", tmp_path / "key.json")
    assert owned and owner_accuracy >= 0.98
    stolen, independent_accuracy = verify_watermark(
        tmp_path / "independent.npz", tmp_path / "key.json"
    )
    assert not stolen and independent_accuracy < 0.3  # chance is 0.1


def test_embed_refuses_a_zero_epoch_budget() -> None:
    model = build_model("mlp", (8, 8, 1), 10)
    with pytest.raises(ConfigError, match="max_epochs"):
        embed(model, KEY, max_epochs=0, target_accuracy=0.9, learning_rate=0.1)

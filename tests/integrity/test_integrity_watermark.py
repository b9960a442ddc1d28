"""WAFFLE watermark on a small MLP trained on sklearn digits (a few seconds in all)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from common.data.shards import dataset_of
from common.errors import ConfigError
from common.learning.models import build_model
from scenarios.loader import load_scenario
from server.evaluation import Evaluator
from server.guard import IntegrityGuard
from server.integrity.checkpoint import save_checkpoint
from server.integrity.watermark import (
    WatermarkKey,
    embed,
    verify_watermark,
    watermark_accuracy,
    watermark_key_path,
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


def test_generated_keys_come_from_the_os_not_from_any_seed() -> None:
    """The server's adversary holds the scenario and its seed: nothing there fixes the key."""
    first, second = (
        WatermarkKey.generate(num_triggers=100, input_shape=(8, 8, 1), num_classes=10,
                              model_name="mlp")
        for _ in range(2)
    )  # fmt: skip
    assert first.seed != second.seed and first.seed.bit_length() > 192  # 256 random bits
    assert not np.allclose(first.trigger_set()[0], second.trigger_set()[0])
    assert first.commitment() != second.commitment()


def test_key_file_is_owner_only_even_when_it_replaces_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "wm.json"
    KEY.save(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    path.chmod(0o644)
    KEY.save(path)  # atomic replace: the new file never inherits the old mode
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["wm.json"]  # no temporary left
    assert hashlib.sha256(path.read_bytes()).hexdigest() == KEY.commitment()


def test_a_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    """A local attacker plants a link so the owner writes the key where they can read it."""
    exposed = tmp_path / "world_readable.json"
    exposed.write_text("{}")
    link = tmp_path / "wm.json"
    link.symlink_to(exposed)
    with pytest.raises(ConfigError, match="is a symlink; refusing to write"):
        KEY.save(link)
    assert exposed.read_text() == "{}"
    with pytest.raises(ConfigError, match="is a symlink; refusing to read"):
        WatermarkKey.load(link)


def test_the_key_may_not_live_in_the_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "runs" / "r1"
    with pytest.raises(ConfigError, match="must lie outside the run directory"):
        watermark_key_path(str(run / "sub" / "key.json"), run)
    assert watermark_key_path(str(tmp_path / "k.json"), run) == tmp_path / "k.json"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default = tmp_path / "home" / ".fedshield" / "watermark_keys" / "r1.json"
    assert watermark_key_path(None, run) == default


def test_the_guard_leaves_only_a_commitment_in_the_run_directory(tmp_path: Path) -> None:
    key_file = tmp_path / "secret" / "wm.json"
    scenario = load_scenario(
        "scenarios/integrity_watermark.toml",
        [f'integrity.watermark.key_file="{key_file}"', "integrity.watermark.num_triggers=10"],
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    evaluator = Evaluator(model_name="mlp", dataset=dataset_of(scenario), success_set=None)
    guard = IntegrityGuard(scenario, run_dir, malicious=frozenset(), evaluator=evaluator)
    assert guard.watermark is not None and guard.watermark.seed != scenario.seed
    key = WatermarkKey.load(key_file)
    assert key == guard.watermark and key_file.stat().st_mode & 0o777 == 0o600
    commitment = json.loads((run_dir / "watermark_commitment.json").read_text())
    assert commitment["key_sha256"] == key.commitment()
    for stored in run_dir.rglob("*"):  # nothing in the run directory regenerates the triggers
        assert str(key.seed) not in stored.read_text(errors="ignore")


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


def _thief_fine_tunes(model: tf.keras.Model, fraction: float) -> float:
    """The thief (no key) fine-tunes on clean digits with the quickstart's optimiser, 10 epochs."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    chosen = np.random.default_rng(11).permutation(len(images))[: int(fraction * len(images))]
    model.compile(tf.keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    tf.keras.utils.set_random_seed(7)
    model.fit(images[chosen], digits.target[chosen], epochs=10, batch_size=32, verbose=0)
    return watermark_accuracy(model, KEY)


def test_the_longer_schedule_survives_more_fine_tuning() -> None:
    """Same model, same key, same thief: only the epochs after the 0.98 target differ."""
    survived = {}
    for extra in (0, 60):
        owner = _trained_mlp(0)
        epochs = embed(owner, KEY, max_epochs=30, target_accuracy=0.98, learning_rate=0.05,
                       extra_epochs=extra)  # fmt: skip
        assert epochs >= extra + 1 and watermark_accuracy(owner, KEY) >= 0.98
        survived[extra] = _thief_fine_tunes(owner, 0.3)
    # Measured: 0.30 (plain WAFFLE: removed) -> 0.61 with 60 extra epochs (owned, threshold 0.5).
    assert survived[0] < 0.4 and survived[60] > 0.55

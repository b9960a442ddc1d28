"""WAFFLE: server-side watermarking of the global model (Tekgul et al., SRDS 2021).

WAFFLE (arXiv:2008.07298) lets the FL server, which never sees client data, prove ownership of
the global model: after every aggregation the server retrains the model on a secret *trigger
set* until it labels at least ``target_accuracy`` of it correctly (or ``max_epochs`` passed).
Clients train on their own data only, so they dilute the watermark each round and the server
restores it. A model is declared watermarked when its trigger accuracy is at least a threshold
well above chance (``1 / num_classes``): an independently trained model labels the random
triggers at about chance level.

Trigger set ("WAFFLEPattern", a class-specific pattern superimposed on random noise; here the
pattern is a seeded binary mask rather than the paper's drawn shapes, which keeps the key a few
integers). With ``rng = numpy.random.default_rng([seed, 0x57AF])``:

* per class ``c``: ``P_c ~ Bernoulli(1/2)^{input_shape}`` (drawn first, class by class);
* trigger ``i`` (``i = 0..n-1``) has label ``y_i = i mod num_classes`` and image
  ``x_i = clip((1 - a) * B_i + a * P_{y_i}, 0, 1)`` with background ``B_i ~ U[0, 1)^{shape}``
  and ``a = pattern_weight`` (default 0.6).

Inputs are expected in ``[0, 1]`` (the digits loader scales ``x / 16``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray
from pydantic import Field, ValidationError

from common.errors import ConfigError
from common.learning.models import build_model
from common.registry import Params
from common.results import atomic_write
from common.validation import one_line
from server.integrity.checkpoint import load_checkpoint

_RNG_DOMAIN = 0x57AF  # keeps trigger draws apart from any other use of the same seed


class WatermarkKey(Params):
    """The owner's secret: everything needed to regenerate the trigger set and the model."""

    scheme: Literal["waffle-pattern/v1"] = "waffle-pattern/v1"
    seed: int = Field(ge=0)
    num_triggers: int = Field(ge=1, le=100_000)
    input_shape: tuple[int, ...] = Field(min_length=1)
    num_classes: int = Field(ge=2)
    model_name: str
    pattern_weight: float = Field(default=0.6, gt=0.0, le=1.0)

    def trigger_set(self) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """Images ``(n, *input_shape)`` in ``[0, 1]`` and labels ``(n,)`` (module docstring)."""
        rng = np.random.default_rng([self.seed, _RNG_DOMAIN])
        patterns = (rng.random((self.num_classes, *self.input_shape)) < 0.5).astype(np.float32)
        labels = np.arange(self.num_triggers, dtype=np.int64) % self.num_classes
        background = rng.random((self.num_triggers, *self.input_shape), dtype=np.float32)
        images = (1.0 - self.pattern_weight) * background + self.pattern_weight * patterns[labels]
        return np.clip(images, 0.0, 1.0).astype(np.float32), labels

    @classmethod
    def generate(
        cls, *, num_triggers: int, input_shape: tuple[int, ...], num_classes: int, model_name: str
    ) -> WatermarkKey:
        """A fresh key whose 256-bit seed comes from the operating system's CSPRNG.

        Never from the scenario seed: the scenario is written into the run directory and known
        to every client, and anyone holding the trigger set can fine-tune it away in one epoch.
        """
        return cls(
            seed=secrets.randbits(256),
            num_triggers=num_triggers,
            input_shape=input_shape,
            num_classes=num_classes,
            model_name=model_name,
        )

    def to_bytes(self) -> bytes:
        """The exact bytes :meth:`save` writes, which :meth:`commitment` hashes."""
        return (self.model_dump_json(indent=2) + "\n").encode("utf-8")

    def commitment(self) -> str:
        """``sha256(key file bytes)``: public, binds the owner to this key before any dispute."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key atomically, owner-only (0600); a symlink at ``path`` is refused."""
        target = Path(path)
        if target.is_symlink():
            raise ConfigError(f"watermark key {str(target)!r}: is a symlink; refusing to write")
        data = self.to_bytes()

        def write(handle: BinaryIO) -> None:
            handle.write(data)

        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(target, write, mode=0o600)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WatermarkKey:
        """Read a key written by :meth:`save`; a symlink or a malformed key is a ConfigError."""
        if Path(path).is_symlink():
            raise ConfigError(f"watermark key {str(path)!r}: is a symlink; refusing to read")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as err:
            raise ConfigError(f"watermark key {str(path)!r}: {err.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            text = handle.read().decode("utf-8")
        try:
            return cls.model_validate_json(text)
        except ValidationError as err:
            raise ConfigError(one_line(err, str(path))) from None


def watermark_key_path(key_file: str | None, run_dir: Path) -> Path:
    """Where a run's key goes (``WatermarkConfig.key_file``); inside ``run_dir`` is refused.

    The run directory is what gets shared, published or stolen with the model.
    """
    path = (
        Path(key_file).expanduser()
        if key_file is not None
        else Path.home() / ".fedshield" / "watermark_keys" / f"{run_dir.name}.json"
    )
    resolved, run = path.resolve(), run_dir.resolve()
    if resolved == run or run in resolved.parents:
        raise ConfigError(
            f"integrity.watermark.key_file: got {key_file!r}; it must lie outside the run "
            f"directory {str(run_dir)!r}"
        )
    return path


def watermark_accuracy(model: tf.keras.Model, key: WatermarkKey) -> float:
    """Fraction of triggers that ``model`` labels with their trigger label."""
    images, labels = key.trigger_set()
    predictions = np.argmax(model(images, training=False).numpy(), axis=1)
    return float(np.mean(predictions == labels))


def _trigger_epoch(
    model: tf.keras.Model,
    images: NDArray[np.float32],
    labels: NDArray[np.int64],
    optimizer: tf.keras.optimizers.Optimizer,
    batch_size: int,
) -> None:
    """One SGD pass over the trigger set, mini-batches in a fixed order."""
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
    for start in range(0, len(labels), batch_size):
        with tf.GradientTape() as tape:
            predictions = model(images[start : start + batch_size], training=True)
            loss = loss_fn(labels[start : start + batch_size], predictions)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))


def embed(
    model: tf.keras.Model,
    key: WatermarkKey,
    *,
    max_epochs: int,
    target_accuracy: float,
    learning_rate: float,
    extra_epochs: int = 0,
    batch_size: int = 32,
) -> int:
    """Retrain ``model`` in place on the trigger set; return the epochs used.

    Plain SGD on the sparse categorical cross-entropy of the softmax output: first until
    ``watermark_accuracy >= target_accuracy`` (at most ``max_epochs``; WAFFLE's retraining),
    then ``extra_epochs`` more every time. The extra epochs are the longer embedding schedule:
    once the triggers are labelled right their loss keeps falling, the margin between the
    trigger label and the others grows, and a thief's fine-tuning needs that much more drift
    to flip them (``benchmarks/watermark_robustness.py``: on the quickstart, fine-tuning on
    30 % of the data at lr 0.1 leaves 0.42 of the triggers with 0 extra epochs, 0.8+ with
    them). A private optimiser leaves the model's compiled optimiser state untouched.
    """
    if max_epochs < 1 or batch_size < 1 or extra_epochs < 0:
        raise ConfigError(
            f"max_epochs/extra_epochs/batch_size: got {max_epochs}/{extra_epochs}/{batch_size}; "
            "need >= 1, >= 0, >= 1"
        )
    images, labels = key.trigger_set()
    optimizer = tf.keras.optimizers.SGD(learning_rate=learning_rate)
    epochs = 0
    while epochs < max_epochs and watermark_accuracy(model, key) < target_accuracy:
        _trigger_epoch(model, images, labels, optimizer, batch_size)
        epochs += 1
    for _ in range(extra_epochs):
        _trigger_epoch(model, images, labels, optimizer, batch_size)
    return epochs + extra_epochs


def verify_watermark(
    checkpoint_npz: str | os.PathLike[str],
    key_json: str | os.PathLike[str],
    *,
    threshold: float = 0.5,
) -> tuple[bool, float]:
    """Rebuild the key's model, load the checkpoint's weights, return (watermarked, accuracy).

    ``watermarked`` is ``accuracy >= threshold``.
    """
    key = WatermarkKey.load(key_json)
    model = build_model(key.model_name, key.input_shape, key.num_classes)
    model.set_weights(load_checkpoint(checkpoint_npz))
    accuracy = watermark_accuracy(model, key)
    return accuracy >= threshold, accuracy

"""TensorBoard event files of a run: one scalar per metric per round, next to ``metrics.jsonl``.

The events are written into the run directory itself, so ``tensorboard --logdir DIR`` names
each run by its directory and shows every run (or every cell of a sweep) side by side. The
scalars are the round's ``metrics.jsonl`` record, read by name:

    eval/accuracy, eval/loss            clean test accuracy and loss of the global model
    attack/success_rate                 the attack's success rate (data attacks with a target)
    privacy/epsilon                     the headline epsilon so far (``epsilon_max``) when DP is on
    clients/rejected, clients/refused,  replies the gate dropped, broadcasts clients refused,
    clients/failed, train/loss          clients that failed, the clients' mean training loss
    time/<step>                         the round's time split (``server/timing.py``)

A value that is absent or non-finite in the record (a diverged model's loss) is not written:
TensorBoard would draw it as a spike to infinity rather than as a gap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf

SCALARS = {
    "accuracy": "eval/accuracy",
    "loss": "eval/loss",
    "attack_success_rate": "attack/success_rate",
    "epsilon_max": "privacy/epsilon",
    "num_rejected": "clients/rejected",
    "num_refused": "clients/refused",
    "num_failures": "clients/failed",
    "train_loss": "train/loss",
}
"""``metrics.jsonl`` key -> TensorBoard tag."""


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def board_scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The tags and values one ``metrics.jsonl`` record contributes."""
    scalars = {tag: _finite(row.get(key)) for key, tag in SCALARS.items()}
    timing = row.get("time")
    if isinstance(timing, Mapping):
        scalars.update({f"time/{step}": _finite(value) for step, value in timing.items()})
    return {tag: value for tag, value in scalars.items() if value is not None}


class BoardWriter:
    """Writes each round's scalars at step = round and flushes, so a live run shows progress."""

    def __init__(self, run_dir: Path) -> None:
        self._writer = tf.summary.create_file_writer(str(run_dir))

    def write(self, row: Mapping[str, Any]) -> None:
        """Write the scalars of one ``metrics.jsonl`` record."""
        with self._writer.as_default(step=int(row["round"])):
            for tag, value in board_scalars(row).items():
                tf.summary.scalar(tag, value)
        self._writer.flush()

    def close(self) -> None:
        """Flush and release the event file (later writes would reopen nothing: call once)."""
        self._writer.close()

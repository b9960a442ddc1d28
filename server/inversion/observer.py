"""The honest-but-curious server: it aggregates as told, and inverts what it is sent.

:class:`CuriousServer` is handed every round's received replies by the strategy (after the
wire, before the gate: what arrived). For the scenario's chosen clients and rounds it recovers
labels and images from the update (:mod:`server.inversion.gradient`) knowing only what the
server knows (global weights, reply, scenario). Scoring is the metrics layer's job and uses
ground truth the attack never sees: each reconstruction is compared with the closest image of
the client's shard (:func:`~server.inversion.quality.best_match`), and uniform noise scored
the same way is the "failed" baseline. At the end, with ``class_representatives``, it inverts
the final model (:mod:`server.inversion.class_inversion`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.data.datasets import Dataset
from common.data.shards import partitions_of
from common.learning.models import build_model
from common.protocol import TrainReply
from common.schema import Scenario
from common.seeding import derive_rng
from server.inversion.class_inversion import class_inversion_report
from server.inversion.figures import Reconstruction, save_update_grid
from server.inversion.gradient import (
    invert_gradient,
    recover_labels,
    update_gradient,
)
from server.inversion.quality import best_match, random_baseline

RECOVERED_DB = 20.0
"""PSNR from which a reconstruction counts as recovering its best-matching image."""


class CuriousServer:
    """Inverts chosen clients' replies in chosen rounds; see the module docstring."""

    def __init__(self, scenario: Scenario, dataset: Dataset, run_dir: Path) -> None:
        self.scenario = scenario
        self.config = scenario.inversion
        self.dataset = dataset
        self.run_dir = run_dir
        self.parts = partitions_of(scenario)
        self.data_range = (float(dataset.x_train.min()), float(dataset.x_train.max()))
        self.model = build_model(
            scenario.model.name, dataset.input_shape, dataset.num_classes, l2=scenario.model.l2
        )
        self.attacks: list[dict[str, Any]] = []
        self.missed: list[dict[str, int]] = []
        self._pictures: list[Reconstruction] = []

    def __call__(
        self, server_round: int, replies: Sequence[TrainReply], base: list[NDArray[np.float32]]
    ) -> None:
        """Attack this round's replies from the chosen clients (the strategy's observer)."""
        if server_round not in self.config.rounds:
            return
        received = {r.partition_id: r for r in replies}
        for client in self.config.clients:
            if client in received:
                self.attacks.append(self._attack(server_round, received[client], base))
            else:
                self.missed.append({"round": server_round, "client": client})

    def _attack(
        self, server_round: int, reply: TrainReply, base: list[NDArray[np.float32]]
    ) -> dict[str, Any]:
        shard = self.parts[reply.partition_id]
        record, picture = attack_update(
            self.model,
            base,
            reply,
            scenario=self.scenario,
            shard=(self.dataset.x_train[shard], self.dataset.y_train[shard]),
            data_range=self.data_range,
            rng=derive_rng(self.scenario.seed, "inversion", server_round, reply.partition_id),
        )
        self._pictures.append(replace(picture, title=f"r{server_round} c{reply.partition_id}"))
        return {"round": server_round, "client": reply.partition_id, **record}

    def summary(self, final: list[NDArray[np.float32]], accepted: Iterable[int]) -> dict[str, Any]:
        """The ``inversion`` entry of ``summary.json``; writes the picture grids.

        MI-FACE's images are scored against the class means of the ``accepted`` clients' data.
        """
        out: dict[str, Any] = {"updates": self.attacks, "not_sampled": self.missed}
        if self._pictures:
            save_update_grid(self._pictures, self.run_dir / "inversion_updates.png")
        if self.attacks:
            out["psnr_mean"] = float(np.mean([a["psnr_mean"] for a in self.attacks]))
            out["ssim_mean"] = float(np.mean([a["ssim_mean"] for a in self.attacks]))
            out["random_psnr"] = float(np.mean([a["random_psnr"] for a in self.attacks]))
        if self.config.class_representatives:
            members = np.concatenate([self.parts[p] for p in sorted(accepted)] or [np.arange(0)])
            self.model.set_weights(final)
            out["classes"] = class_inversion_report(
                self.model,
                self.dataset.x_train[members],
                self.dataset.y_train[members],
                iterations=self.config.class_iterations,
                learning_rate=self.config.learning_rate,
                data_range=self.data_range,
                run_dir=self.run_dir,
            )
        return out


def attack_update(
    model: tf.keras.Model,
    base: list[NDArray[np.float32]],
    reply: TrainReply,
    *,
    scenario: Scenario,
    shard: tuple[NDArray[np.float32], NDArray[np.int64]],
    data_range: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[dict[str, Any], Reconstruction]:
    """Invert one reply (server knowledge only), then score it against the client's ``shard``."""
    started = time.perf_counter()
    config = scenario.inversion
    x_true, y_true = shard
    target = update_gradient(
        base,
        [np.asarray(a, np.float32) for a in reply.arrays],
        learning_rate=scenario.train.learning_rate,
        local_steps=reply.local_steps,
    )
    # The reply's example count is a claim the server sees: no more images than examples.
    count = config.num_images or scenario.train.batch_size
    labels = recover_labels(target, max(1, min(count, reply.num_examples)))
    model.set_weights(base)
    images = invert_gradient(model, target, labels, config=config, data_range=data_range, rng=rng)
    matches = [best_match(i, x_true, data_range=data_range[1] - data_range[0]) for i in images]
    random_psnr, random_ssim = random_baseline(
        x_true, low=data_range[0], high=data_range[1], rng=rng
    )
    record = {
        "local_steps": reply.local_steps,
        "num_images": len(images),
        "psnr": [m[1] for m in matches],
        "ssim": [m[2] for m in matches],
        "psnr_mean": float(np.mean([m[1] for m in matches])),
        "ssim_mean": float(np.mean([m[2] for m in matches])),
        "random_psnr": random_psnr,
        "random_ssim": random_ssim,
        # Distinct shard images some reconstruction matches at >= 20 dB: a batch attack that
        # returns one image B times scores a high mean PSNR but recovers one image.
        "images_recovered": len({m[0] for m in matches if m[1] >= RECOVERED_DB}),
        "label_accuracy": float(
            np.mean([labels[i] == y_true[m[0]] for i, m in enumerate(matches)])
        ),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return record, Reconstruction("", images, x_true[[m[0] for m in matches]])

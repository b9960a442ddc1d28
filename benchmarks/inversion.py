"""Measured gradient inversion: how it degrades with local work and with DP-SGD's noise.

The client side is fedshield's own local training (``train_locally``, the code a ClientApp
runs) and the server side is the curious server's attack (``attack_update``), without Ray: one
client holding ``batch`` digits, so an epoch is one full-batch SGD step and ``epochs`` local
epochs are that many steps. Per arm, ``len(SEEDS)`` clients (different digits and initial
weights); each reconstruction is scored against the client's shard (best match) and uniform
noise scored the same way is the failure baseline.

* Degradation: batch size x local epochs, no DP.
* DP-SGD: batch 1, one step, clip C = 1, noise multiplier sigma; epsilon at delta = 1e-5 is the
  accountant's for that one step (q = 1: a shard of one example).

Writes ``benchmarks/results/inversion.txt`` (atomically).
Run:  TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/inversion.py
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tensorflow as tf  # noqa: E402

from common.data.shards import dataset_of  # noqa: E402
from common.learning.models import build_model  # noqa: E402
from common.learning.training import compiled_model, train_locally  # noqa: E402
from common.protocol import TrainReply  # noqa: E402
from common.results import atomic_write_text  # noqa: E402
from common.schema import Scenario  # noqa: E402
from server.inversion.observer import attack_update  # noqa: E402
from server.privacy_accounting import RoundEvent, composed_epsilon  # noqa: E402

SEEDS = tuple(range(5))
BATCHES = (1, 2, 4, 8)
EPOCHS = (1, 2, 5)
SIGMAS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
DELTA = 1e-5
TABLE = ROOT / "benchmarks" / "results" / "inversion.txt"


def scenario(batch: int, epochs: int, sigma: float | None) -> Scenario:
    """The client's settings; ``sigma`` None trains without DP."""
    dp: dict[str, Any] = {"enabled": sigma is not None, "noise_multiplier": sigma or 0.0}
    return Scenario.model_validate(
        {
            "name": "inversion_bench",
            "seed": 0,
            "rounds": 1,
            "train": {"batch_size": batch, "local_epochs": epochs, "learning_rate": 0.1},
            "dp": {**dp, "l2_norm_clip": 1.0, "sampling": "poisson", "delta": DELTA},
        }
    )


def one_client(setting: Scenario, seed: int) -> dict[str, Any]:
    """Train one client on ``batch`` digits chosen by ``seed``; attack and score its update."""
    dataset = dataset_of(setting)
    batch, dp = setting.train.batch_size, setting.dp.enabled
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(dataset.y_train), size=batch, replace=False)
    x, y = dataset.x_train[chosen], dataset.y_train[chosen]
    tf.keras.utils.set_random_seed(seed)
    model = build_model("mlp", dataset.input_shape, dataset.num_classes)
    base = [np.asarray(w, np.float32) for w in model.get_weights()]
    client = compiled_model(setting, dataset.input_shape, dataset.num_classes, dp=dp)
    out = train_locally(client, base, x, y, scenario=setting, seed=seed, dp=dp)
    reply = TrainReply(0, 0, 1, out.weights, batch, local_steps=out.local_steps)
    record, _ = attack_update(
        model, base, reply, scenario=setting, shard=(x, y), data_range=(0.0, 1.0), rng=rng
    )
    return record


def _mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):6.2f} +- {statistics.stdev(values):5.2f}"


def arm(label: str, setting: Scenario) -> str:
    """One table line: PSNR, SSIM, label accuracy and the noise baseline over the seeds."""
    rows = [one_client(setting, seed) for seed in SEEDS]
    line = (
        f"{label:<26} PSNR {_mean_sd([r['psnr_mean'] for r in rows])} dB  "
        f"SSIM {_mean_sd([r['ssim_mean'] for r in rows])}  "
        f"recovered {statistics.mean([r['images_recovered'] for r in rows]):4.1f}/"
        f"{setting.train.batch_size}  "
        f"labels {statistics.mean([r['label_accuracy'] for r in rows]):.2f}  "
        f"noise PSNR {statistics.mean([r['random_psnr'] for r in rows]):5.2f}"
    )
    print(line, flush=True)
    return line


def epsilon(sigma: float) -> float:
    """Epsilon at ``DELTA`` of one DP-SGD step with q = 1 (infinite without noise)."""
    if sigma == 0.0:
        return math.inf
    return composed_epsilon([RoundEvent(1, 1, 1, 1.0, sigma, 1)], DELTA, method="poisson_rdp")


def main() -> None:
    lines = [
        f"gradient inversion, mlp on 8x8 digits, mean +- sd over {len(SEEDS)} clients; PSNR and",
        "SSIM of each reconstruction against its best match in the shard; recovered = distinct",
        "shard images matched at >= 20 dB; noise = uniform noise scored the same way",
        "",
    ]
    lines.append("degradation (no DP): batch b = shard, e local epochs = e full-batch steps")
    for batch in BATCHES:
        for epochs in EPOCHS:
            lines.append(arm(f"b={batch} e={epochs}", scenario(batch, epochs, None)))
    lines += ["", f"DP-SGD, b=1, one step, C=1; epsilon at delta={DELTA} for that step"]
    for sigma in SIGMAS:
        lines.append(arm(f"sigma={sigma} eps={epsilon(sigma):.3g}", scenario(1, 1, sigma)))
    atomic_write_text(TABLE, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

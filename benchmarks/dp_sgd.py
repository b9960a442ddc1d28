"""Seconds per local epoch: plain training versus the DP-SGD path, for every built-in model.

One epoch is the client loop of ``common/learning/training.py``: the batch plan of n = 1437
examples (the digits training split's size), batch 32, SGD, run by
``common.learning.local_round.run_plan`` (the whole plan in one compiled call). Rows:

* ``plain``: ``tf.keras.Sequential``, shuffle plan (44 full batches);
* ``dp fast``: ``common.learning.dp.build_dp_model(..., expected_batch_size=32)`` (fast clipping,
  our Conv2D registry function, ``SecretNoiseDPSequential``), sigma 1.1, C 1, Poisson plan (45
  steps of random size, empty ones included): the default path of honest clients;
* ``dp fast shuffle``: the same model without ``expected_batch_size`` (divides by |B|) on the
  shuffle plan (44 full batches), to separate clipping from sampling;
* ``dp fallback``: tensorflow-privacy's vectorised per-example path (no layer registry), the
  path ``DPSequential`` silently takes for an unregistered layer, run by ``train_on_batch`` per
  step (its own ``train_step``); shown for reference.

Each figure is the best of ``REPEATS`` epochs after one warm-up epoch (tracing excluded); the
paths run their epochs round-robin so load from other processes hits them alike.
Target: dp fast <= 1.5x plain for every built-in model.

Run:  TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/dp_sgd.py > benchmarks/results/dp_sgd.txt
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray
from tensorflow_privacy.privacy.keras_models.dp_keras_model import DPSequential

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.learning.batching import batch_plan  # noqa: E402
from common.learning.dp import build_dp_model  # noqa: E402
from common.learning.local_round import StepFn, run_plan, sgd_step  # noqa: E402
from common.learning.models import MODELS  # noqa: E402

NUM_EXAMPLES = 1437
BATCH_SIZE = 32
REPEATS = 7
SHAPES = ((8, 8, 1), (28, 28, 1), (32, 32, 3))
DP = {"l2_norm_clip": 1.0, "noise_multiplier": 1.1, "num_microbatches": None}

ModelFactory = Callable[[tuple[int, ...]], tf.keras.Model]


def _plain(name: str) -> ModelFactory:
    return lambda shape: tf.keras.Sequential(MODELS[name].target(shape, 10, 0.0))


def _dp_fast(name: str, expected_batch_size: int | None) -> ModelFactory:
    return lambda shape: build_dp_model(
        MODELS[name].target(shape, 10, 0.0),
        expected_batch_size=expected_batch_size,
        **DP,  # type: ignore[arg-type]
    )


def _dp_fallback(name: str) -> ModelFactory:
    return lambda shape: DPSequential(
        use_xla=False, layer_registry=None, layers=MODELS[name].target(shape, 10, 0.0), **DP
    )


def _private(model: tf.keras.Model) -> StepFn:
    step: StepFn = model.private_step
    return step


class _Runner:
    """One compiled model and its own seeded plan generator; ``epoch()`` times one epoch."""

    def __init__(
        self,
        factory: ModelFactory,
        x: NDArray[np.float32],
        y: NDArray[np.int64],
        sampling: str,
        step: Callable[[tf.keras.Model], StepFn] | None,
    ) -> None:
        tf.keras.utils.set_random_seed(0)
        self.model = factory(x.shape[1:])
        self.model.compile(
            optimizer=tf.keras.optimizers.SGD(learning_rate=0.1),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(),
        )
        self.x, self.y, self.sampling, self.step = x, y, sampling, step
        self.rng = np.random.default_rng(0)
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def epoch(self) -> None:
        plan = batch_plan(
            len(self.y), batch_size=BATCH_SIZE, epochs=1, rng=self.rng, sampling=self.sampling
        )
        wall, cpu = time.perf_counter(), time.process_time()
        if self.step is not None:  # empty Poisson batches included: they are noise-only steps
            run_plan(self.model, self.step, self.x, self.y, plan)
        else:
            for indices in plan:
                self.model.train_on_batch(self.x[indices], self.y[indices])
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)


def main() -> None:
    tf.get_logger().setLevel("ERROR")  # the fallback's vectorized_map warns on every trace
    print(
        f"python {platform.python_version()}, tensorflow {tf.__version__}, "
        f"{os.cpu_count()} CPUs, n={NUM_EXAMPLES}, batch={BATCH_SIZE}, "
        f"best of {REPEATS} interleaved epochs after one warm-up epoch"
    )
    print(
        "wall = elapsed seconds per epoch; cpu = process CPU seconds (all TF threads), "
        "less disturbed by other processes on a shared machine"
    )
    print(
        f"{'model':<5} {'input':<9} {'path':<16} {'wall s':>7} {'x plain':>8} "
        f"{'cpu s':>7} {'x plain':>8}"
    )
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        x = rng.random((NUM_EXAMPLES, *shape), dtype=np.float32)
        y = rng.integers(0, 10, NUM_EXAMPLES).astype(np.int64)
        for name in MODELS:
            runners = {
                "plain": _Runner(_plain(name), x, y, "shuffle", sgd_step),
                "dp fast": _Runner(_dp_fast(name, BATCH_SIZE), x, y, "poisson", _private),
                "dp fast shuffle": _Runner(_dp_fast(name, None), x, y, "shuffle", _private),
                "dp fallback": _Runner(_dp_fallback(name), x, y, "shuffle", None),
            }
            # Round-robin epochs so a burst of load from elsewhere hits every path alike.
            for _ in range(REPEATS + 1):
                for runner in runners.values():
                    runner.epoch()
            best = {label: (min(r.wall[1:]), min(r.cpu[1:])) for label, r in runners.items()}
            plain_wall, plain_cpu = best["plain"]
            size = "x".join(map(str, shape))
            for label, (wall, cpu) in best.items():
                print(
                    f"{name:<5} {size:<9} {label:<16} {wall:>7.3f} {wall / plain_wall:>8.2f} "
                    f"{cpu:>7.3f} {cpu / plain_cpu:>8.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

"""Will the run fit in memory? Estimated before Ray starts, refused in one line when it cannot.

Flower's Ray backend starts ``A = floor(C / simulation.num_cpus)`` client actors at once
(``flwr.simulation.ray_transport.ray_actor.pool_size_from_resources``), where C is the CPUs the
run's private Ray is given (:func:`ray_cpus`). Each holds a TensorFlow runtime, the model and its
optimizer, and the whole dataset (every actor loads it to cut its shard). The estimate:

    actor  = TF_RUNTIME + P * 4 B * (copies + dp_batch) + D
    server = TF_RUNTIME + RAY_SERVICES + D + P * 4 B * (3 m + 4)
    need   = A * actor + server

P parameters (float32); copies = 5 with SGD (weights, gradient, momentum, the received global,
the delta sent back), 6 with Adam (two moments); dp_batch = the batch size under local DP-SGD,
whose vectorised clipping keeps one gradient per example; D the dataset's arrays in bytes; m the
clients sampled per round (their replies, the stacked deltas and the chain's working copies).
The run is refused when ``need`` exceeds the host's available memory (``MemAvailable`` in
``/proc/meminfo``), with the ``simulation.num_cpus`` that would fit.

The constants were measured on the development machine (tensorflow 2.15.1, CPU): a process that
imports TensorFlow, Flower and Ray and fits the ``mlp`` once holds 696 MiB resident; an idle Ray
worker 130 to 350 MiB.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from common.errors import ConfigError
from common.schema import Scenario

MIB = 2**20
GIB = 2**30
TF_RUNTIME = 700 * MIB
"""Resident memory of one process with TensorFlow, Flower and Ray imported, after a fit."""
RAY_SERVICES = 500 * MIB
"""Ray's own processes of a local instance (GCS, raylet, agents)."""


def ray_cpus(scenario: Scenario) -> int:
    """CPUs the run's private Ray is started with: the host's, or one client's if it asks more."""
    return max(os.cpu_count() or 1, int(scenario.simulation.num_cpus))


def concurrent_actors(scenario: Scenario, cpus: int) -> int:
    """Client actors Flower's Ray backend starts at once on ``cpus`` CPUs (at least 1)."""
    return max(1, int(cpus / scenario.simulation.num_cpus))


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one client actor and the server side need (see the module docstring)."""

    actor: int
    server: int

    def need(self, actors: int) -> int:
        """Bytes for ``actors`` concurrent actors and the server."""
        return actors * self.actor + self.server


def estimate_memory(scenario: Scenario, num_params: int, dataset_bytes: int) -> MemoryEstimate:
    """The estimate for a model of ``num_params`` parameters and a dataset of ``dataset_bytes``."""
    model = 4 * num_params
    copies = 6 if scenario.train.optimizer == "adam" else 5
    local_dp = scenario.dp.enabled and scenario.dp.mode == "local"
    per_example = scenario.train.batch_size if local_dp else 0
    actor = TF_RUNTIME + model * (copies + per_example) + dataset_bytes
    server = TF_RUNTIME + RAY_SERVICES + dataset_bytes + model * (3 * scenario.num_sampled + 4)
    return MemoryEstimate(actor=actor, server=server)


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """``MemAvailable`` in bytes; None where the kernel does not say (not Linux)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits(
    scenario: Scenario, estimate: MemoryEstimate, *, cpus: int, available: int | None
) -> None:
    """Raise one line when the concurrent actors and the server need more than ``available``."""
    actors = concurrent_actors(scenario, cpus)
    need = estimate.need(actors)
    if available is None or need <= available:
        return
    sim = scenario.simulation
    said = (
        f"simulation.num_cpus: got {sim.num_cpus}; {actors} concurrent client actors "
        f"({cpus} CPUs / {sim.num_cpus}) x {estimate.actor / GIB:.2f} GiB + the server "
        f"{estimate.server / GIB:.2f} GiB need about {need / GIB:.1f} GiB, but this host has "
        f"{available / GIB:.1f} GiB available"
    )
    fitting = (available - estimate.server) // estimate.actor
    if fitting < 1:
        raise ConfigError(f"{said}: not even one client fits; use a smaller model or dataset")
    raise ConfigError(
        f"{said}: set simulation.num_cpus to at least {math.ceil(100 * cpus / fitting) / 100} "
        f"({fitting} concurrent actors)"
    )


@lru_cache(maxsize=32)
def num_params(model: str, input_shape: tuple[int, ...], num_classes: int) -> int:
    """Parameters of the registered ``model`` (built once per shape: validation calls it often).

    Built in a graph of its own: the count needs the variables' shapes, not their values, so no
    initialiser runs and TensorFlow's runtime is not started by validating (0.1 s against 0.05 s
    on the development machine; a sweep may fork its group processes only while it has not
    started: :mod:`fedshield.sweep.forked`).
    """
    import tensorflow as tf

    from common.learning.models import build_model

    with tf.Graph().as_default():
        return int(build_model(model, input_shape, num_classes).count_params())


def check_memory(scenario: Scenario) -> None:
    """Refuse, in one line, a scenario whose concurrent actors cannot fit this host's memory."""
    from common.data.shards import dataset_of

    dataset = dataset_of(scenario)
    arrays = (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    params = num_params(scenario.model.name, dataset.input_shape, dataset.num_classes)
    estimate = estimate_memory(scenario, params, sum(a.nbytes for a in arrays))
    check_fits(scenario, estimate, cpus=ray_cpus(scenario), available=available_memory())

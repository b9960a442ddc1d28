"""Attach a run to a running Ray cluster (``--ray-address`` or ``RAY_ADDRESS``).

Without an address a run starts its own private Ray (:mod:`fedshield.ray_session`); with one,
the driver joins that cluster and Flower's actors run on its nodes. Three things Flower 1.23 does
not do for an existing cluster, done here:

- **Ray is initialised here, first.** Flower's ``RayBackend.init_ray`` calls ``ray.init`` only
  when Ray is not initialised yet, and it would pass ``num_cpus`` (refused with an address) and
  its own ``runtime_env`` (which replaces any given in ``init_args``).
- **What the workers need travels in the job's runtime environment**, because a worker of an
  existing cluster was started by ``ray start``, not by this driver, and inherits none of its
  environment: the clients' trust anchor (``FEDSHIELD_CLIENT_TRUST``), the quieting and GPU
  settings (``env_vars``), and fedshield's own packages (``py_modules``: Ray zips each package
  directory once, stores it in the cluster, and puts it first on every worker's path, so the
  workers run exactly the driver's code). Third-party dependencies (TensorFlow, Flower, ...)
  must be installed on every node, at the versions in ``constraints.txt``.
- **A start-up check** runs one tiny task with a client's resources that imports the ClientApp
  and loads the scenario's dataset, and the run says in one line where and what it found, or
  fails in one line before the simulation starts (a missing dataset on a node otherwise
  shows up only as every client failing, round after round).

Client resources (CPUs, GPUs, memory) come from the scenario's ``simulation`` section, as in a
private run; Flower sizes its actor pool by CPUs and GPUs only, so a memory reservation that
fits fewer actors than that is refused here (the extra actors would wait forever).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common.crypto.keys import TRUST_ENV
from common.errors import ConfigError, FedshieldError
from common.schema import Scenario, SimulationSpec
from fedshield.ray_session import first_line, private_ray

LOCAL = "local"
"""Ray's own word for "start a new local instance", accepted here as "no cluster"."""

PROJECT_PACKAGES = (
    "common",
    "clients",
    "server",
    "strategies",
    "attacks",
    "scenarios",
    "fedshield",
)
"""fedshield's top-level packages, shipped to the workers as ``py_modules``."""

WORKER_ENV = (
    TRUST_ENV,
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "PYTHONWARNINGS",
    "FLWR_TELEMETRY_ENABLED",
)
"""Driver environment variables the client actors need (set by the runner and the CLI)."""

CHECK_TIMEOUT_S = 300.0
"""How long the start-up check waits for a worker (a cold node installs the runtime env)."""

_MIB = 2**20


def cluster_address(flag: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The cluster to attach to: ``--ray-address``, else ``RAY_ADDRESS``; None: a private Ray.

    ``local`` (Ray's word for a new local instance) and an empty value also mean a private Ray.
    """
    address = flag if flag is not None else environ.get("RAY_ADDRESS")
    if address is None or address.strip() in ("", LOCAL):
        return None
    return address.strip()


def client_resources(simulation: SimulationSpec) -> dict[str, float]:
    """Ray resources of one client actor: ``num_cpus``, ``num_gpus``, ``memory`` (bytes)."""
    resources = {"num_cpus": simulation.num_cpus, "num_gpus": simulation.num_gpus}
    if simulation.memory_mb > 0:
        resources["memory"] = float(simulation.memory_mb * _MIB)
    return resources


def actor_capacity(nodes: list[dict[str, Any]], resources: Mapping[str, float]) -> tuple[int, int]:
    """(actors Flower creates, actors that fit), summed over live nodes (``ray.nodes()``).

    Flower's ``pool_size_from_resources`` counts per node ``floor(CPU / num_cpus)``, bounded by
    ``floor(GPU / num_gpus)`` when clients ask for GPUs; what fits is further bounded by
    ``floor(memory / memory)``.
    """
    created = fitting = 0
    for node in nodes:
        have = node.get("Resources") or {}
        if not node.get("Alive", True) or not have:
            continue
        count = int(have.get("CPU", 0) // resources["num_cpus"])
        if resources.get("num_gpus", 0) > 0:
            count = min(count, int(have.get("GPU", 0) // resources["num_gpus"]))
        created += count
        if resources.get("memory", 0) > 0:
            count = min(count, int(have.get("memory", 0) // resources["memory"]))
        fitting += count
    return created, fitting


def worker_runtime_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The job's runtime environment: :data:`WORKER_ENV` and fedshield's packages."""
    root = Path(__file__).resolve().parents[1]
    return {
        "env_vars": {name: environ[name] for name in WORKER_ENV if name in environ},
        "py_modules": [str(root / package) for package in PROJECT_PACKAGES],
        "excludes": ["__pycache__", "*.pyc"],
    }


@contextmanager
def attached_ray(address: str, *, verbose: bool) -> Iterator[None]:
    """The driver joined to the cluster at ``address`` for the ``with`` block.

    Leaving disconnects the driver; Ray then ends the job's actors (they are not detached), and
    nothing else of the cluster is touched.
    """
    import ray

    try:
        ray.init(
            address=address,
            runtime_env=worker_runtime_env(),
            log_to_driver=verbose,
            logging_level=logging.INFO if verbose else logging.ERROR,
        )
    except Exception as err:
        raise FedshieldError(
            f"--ray-address: could not attach to the Ray cluster at {address!r}: "
            f"{type(err).__name__}: {first_line(err)}"
        ) from err
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def ray_for_run(
    scenario: Scenario,
    address: str | None,
    init_args: dict[str, Any],
    *,
    verbose: bool,
    check: bool = True,
) -> Iterator[None]:
    """A private Ray (``address`` None) or the cluster at ``address``, checked before use
    unless ``check`` is False."""
    if address is None:
        with private_ray(init_args):
            yield
        return
    with attached_ray(address, verbose=verbose):
        if check:
            print(check_workers(scenario, address), flush=True)
        yield


def _probe(scenario_json: str) -> dict[str, Any]:
    """On a worker: import the ClientApp, load the dataset; where and what was found."""
    import clients.app
    from common.data.shards import dataset_of

    scenario = Scenario.model_validate_json(scenario_json)
    return {
        "node": socket.gethostname(),
        "trust": TRUST_ENV in os.environ,
        "project": str(Path(clients.app.__file__).resolve().parents[1]),
        "examples": len(dataset_of(scenario).y_train),
    }


def check_workers(scenario: Scenario, address: str, timeout: float = CHECK_TIMEOUT_S) -> str:
    """Check that a worker with a client's resources can run the clients; the one-line report.

    Refuses first a memory reservation that fits fewer actors than Flower would create.
    """
    import ray

    resources = client_resources(scenario.simulation)
    created, fitting = actor_capacity(ray.nodes(), resources)
    if fitting < created:
        raise ConfigError(
            f"simulation.memory_mb: got {scenario.simulation.memory_mb}; the cluster fits "
            f"{fitting} actors with that memory but Flower creates {created} (it counts CPUs "
            "and GPUs only): lower memory_mb or raise simulation.num_cpus"
        )
    probe = ray.remote(**resources)(_probe)  # type: ignore[call-overload]
    ref = probe.remote(scenario.model_dump_json())
    ready, _ = ray.wait([ref], timeout=timeout)
    if not ready:
        ray.cancel(ref, force=True)
        raise FedshieldError(
            f"Ray cluster at {address}: no worker with {resources} ran the start-up check "
            f"within {timeout:.0f} s (does a node have those resources free?)"
        )
    try:
        found = ray.get(ref)
    except ray.exceptions.RayError as err:
        cause = getattr(err, "cause", None) or err
        raise FedshieldError(
            f"Ray cluster at {address}: a worker cannot run the clients: "
            f"{type(cause).__name__}: {first_line(cause)}"
        ) from err
    if not found["trust"]:  # the runner sets it before attaching: never expected
        raise FedshieldError(f"Ray cluster at {address}: the workers did not receive {TRUST_ENV}")
    return (
        f"cluster {address}: a worker on {found['node']} imports fedshield from "
        f"{found['project']} and reads {scenario.data.dataset} "
        f"({found['examples']} training examples)"
    )

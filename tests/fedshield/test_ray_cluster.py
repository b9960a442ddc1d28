"""Attaching to a Ray cluster: which address, what the workers receive, what fits."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from common.crypto.keys import TRUST_ENV, ClientTrust
from common.integrity_config import IntegrityConfig
from common.schema import SimulationSpec
from common.tf_runtime import grow_gpu_memory
from fedshield.ray_cluster import (
    PROJECT_PACKAGES,
    actor_capacity,
    client_resources,
    cluster_address,
    worker_runtime_env,
)


def test_the_flag_wins_over_ray_address_and_local_means_private() -> None:
    env = {"RAY_ADDRESS": "10.0.0.1:6379"}
    assert cluster_address("127.0.0.1:7000", env) == "127.0.0.1:7000"
    assert cluster_address(None, env) == "10.0.0.1:6379"
    assert cluster_address(None, {}) is None
    assert cluster_address(None, {"RAY_ADDRESS": "local"}) is None
    assert cluster_address(None, {"RAY_ADDRESS": " "}) is None
    # An explicit --ray-address local overrides a cluster named in the environment.
    assert cluster_address("local", env) is None


def test_client_resources_come_from_the_scenario() -> None:
    sim = SimulationSpec(num_cpus=1.5, num_gpus=0.25, memory_mb=512)
    assert client_resources(sim) == {"num_cpus": 1.5, "num_gpus": 0.25, "memory": 512 * 2**20}
    assert client_resources(SimulationSpec(num_cpus=2)) == {"num_cpus": 2.0, "num_gpus": 0.0}


def _node(cpu: float, gpu: float = 0.0, memory_gib: float = 8.0, alive: bool = True) -> dict:
    resources = {"CPU": cpu, "memory": memory_gib * 2**30, "node:127.0.0.1": 1.0}
    if gpu:
        resources["GPU"] = gpu
    return {"Alive": alive, "Resources": resources}


def test_actor_capacity_counts_as_flower_does_then_what_memory_fits() -> None:
    nodes = [_node(8, memory_gib=2), _node(4, gpu=1), _node(16, alive=False)]
    # Flower: floor(8/2) + floor(4/2) = 6; memory 1 GiB fits 2 on the first node.
    assert actor_capacity(nodes, {"num_cpus": 2, "num_gpus": 0}) == (6, 6)
    assert actor_capacity(nodes, {"num_cpus": 2, "num_gpus": 0, "memory": 2**30}) == (6, 4)
    # Half a GPU per client: only the GPU node hosts any, two of them.
    assert actor_capacity(nodes, {"num_cpus": 1, "num_gpus": 0.5}) == (2, 2)


def test_workers_receive_the_trust_anchor_and_the_quieting_not_the_rest() -> None:
    trust = ClientTrust.of(IntegrityConfig(enabled=True), run_seed=7).environment()
    env = {**trust, "TF_FORCE_GPU_ALLOW_GROWTH": "true", "HOME": "/home/me", "AWS_SECRET": "x"}
    runtime_env = worker_runtime_env(env)
    assert runtime_env["env_vars"] == {
        TRUST_ENV: trust[TRUST_ENV],
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
    }


def test_every_project_package_is_shipped_and_nothing_else() -> None:
    runtime_env = worker_runtime_env({})
    shipped = {Path(p).name: Path(p) for p in runtime_env["py_modules"]}
    assert set(shipped) == set(PROJECT_PACKAGES)
    for name, path in shipped.items():
        assert (path / "__init__.py").is_file()
        assert Path(importlib.import_module(name).__file__ or "").parent == path
    # Every top-level package the import contracts name is shipped (a new one must be added).
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert set(pyproject["tool"]["importlinter"]["root_packages"]) == set(PROJECT_PACKAGES)


def test_memory_growth_runs_on_a_cpu_host_and_names_no_gpu() -> None:
    # The GPU branch (set_memory_growth per device) needs a GPU: not on this machine.
    pytest.importorskip("tensorflow")
    assert grow_gpu_memory() == []

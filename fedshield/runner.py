"""Start one scenario on Flower's simulation engine (Ray backend) and return its run directory."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.crypto.keys import ClientTrust
from common.errors import FedshieldError
from common.results import atomic_write_json
from common.schema import Scenario
from common.tf_runtime import quiet_environment
from scenarios.preflight import check_environment


@dataclass(frozen=True)
class RunResult:
    """Where a finished run wrote its files, and its summary."""

    run_dir: Path
    summary: dict[str, Any]


def new_run_dir(scenario: Scenario) -> Path:
    """``OUTPUT/NAME-seedSEED-YYYYmmdd-HHMMSS[-k]``: never reuses an existing directory."""
    base = (
        Path(scenario.output)
        / f"{scenario.name}-seed{scenario.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    candidate, k = base, 1
    while candidate.exists():
        candidate, k = Path(f"{base}-{k}"), k + 1
    candidate.mkdir(parents=True)
    return candidate


def backend_config(scenario: Scenario, verbose: bool) -> dict[str, Any]:
    """Ray backend settings: per-client resources from the scenario, a quiet Ray."""
    sim = scenario.simulation
    return {
        "client_resources": {"num_cpus": sim.num_cpus, "num_gpus": sim.num_gpus},
        "init_args": {
            "num_cpus": max(os.cpu_count() or 1, int(sim.num_cpus)),
            "include_dashboard": False,
            "log_to_driver": verbose,
            "logging_level": logging.INFO if verbose else logging.ERROR,
        },
    }


def import_apps(verbose: bool) -> None:
    """Import Flower's simulation engine, then the client and server apps, quietly.

    Quieting comes before Ray starts, so every actor inherits it, and again right after Flower:
    its Ray transport puts a "once" DeprecationWarning filter first, which would let
    tensorflow_probability's two-line distutils warning through when the apps import
    tensorflow_privacy. With ``verbose`` every warning is shown.
    """
    quiet_environment(verbose)
    import flwr.simulation  # noqa: F401

    quiet_environment(verbose)
    import clients.app  # noqa: F401
    import server.app  # noqa: F401


def run_scenario(scenario: Scenario, *, verbose: bool = False) -> RunResult:
    """Run ``scenario`` end to end; raises the ServerApp's own error if it failed."""
    check_environment(scenario)  # output, key files, GPUs: fail in one line, before Ray starts
    import_apps(verbose)
    from flwr.simulation import run_simulation

    from clients.app import app as client_app
    from server.app import RunOutcome, build_server_app

    # The clients' trust anchor, inherited by the Ray workers: never taken from a message.
    os.environ.update(ClientTrust.of(scenario.integrity, scenario.seed).environment())

    run_dir = new_run_dir(scenario)
    atomic_write_json(run_dir / "scenario.json", scenario.model_dump(mode="json"))
    outcome = RunOutcome()
    if not verbose:
        # fedshield reports failures itself, in one line; Flower would print tracebacks.
        logging.getLogger("flwr").setLevel(logging.CRITICAL)
    try:
        run_simulation(
            server_app=build_server_app(scenario, run_dir, outcome),
            client_app=client_app,
            num_supernodes=scenario.data.num_clients,
            backend_name="ray",
            backend_config=backend_config(scenario, verbose),
            verbose_logging=verbose,
        )
    except RuntimeError:
        # Flower re-raises a ServerApp failure as a bare RuntimeError; the real one is below.
        if outcome.error is None:
            raise
    if outcome.error is not None:
        if isinstance(outcome.error, FedshieldError):
            raise outcome.error
        raise FedshieldError(
            f"the run failed: {type(outcome.error).__name__}: {outcome.error} (files in {run_dir})"
        ) from outcome.error
    if outcome.summary is None:
        raise FedshieldError(
            f"the simulation stopped before finishing; rerun with --verbose (files in {run_dir})"
        )
    return RunResult(run_dir, outcome.summary)

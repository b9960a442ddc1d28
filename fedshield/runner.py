"""Start one scenario on Flower's simulation engine (Ray backend) and return its run directory."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.collector import paused_collector
from common.crypto.keys import ClientTrust
from common.errors import FedshieldError
from common.results import atomic_write_json
from common.schema import Scenario
from common.tf_runtime import configure_tensorflow, quiet_environment
from fedshield.message_dispatch import install as install_dispatch
from fedshield.process_backend import register_process_backend
from fedshield.ray_cluster import client_resources, ray_for_run
from fedshield.ray_session import (
    first_line,
    register_watched_backend,
    run_in_thread,
    stop_on_signals,
)
from fedshield.resume import resume_point
from scenarios.preflight import check_environment
from scenarios.resources import ray_cpus

if TYPE_CHECKING:
    from flwr.serverapp import ServerApp

    from server.app import RunOutcome
    from server.stopping import StopRequest

STOP_GRACE_S = 8.0
"""After a stop, how long the runner waits for Flower's engine to wind down before it ends Ray."""


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


def ray_init_args(scenario: Scenario, verbose: bool) -> dict[str, Any]:
    """``ray.init`` settings of the run's private Ray: all the host's CPUs, a quiet Ray."""
    return {
        "num_cpus": ray_cpus(scenario),
        "include_dashboard": False,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.ERROR,
    }


def backend_config(scenario: Scenario) -> dict[str, Any]:
    """Flower's Ray backend settings: per-client resources from the scenario."""
    return {"client_resources": client_resources(scenario.simulation)}


def check_backend(scenario: Scenario, ray_address: str | None) -> None:
    """A Ray cluster runs clients only on the Ray backend: one line, before anything starts."""
    if ray_address is not None and scenario.simulation.backend != "ray":
        raise FedshieldError(
            f"simulation.backend: got {scenario.simulation.backend!r}; a Ray cluster "
            f"(--ray-address {ray_address}) runs the clients only with simulation.backend = 'ray'"
        )


def import_apps(verbose: bool) -> None:
    """Import Flower's simulation engine, then the client and server apps, quietly.

    Quieting comes before Ray starts, so every actor inherits it, and again right after Flower:
    its Ray transport puts a "once" DeprecationWarning filter first, which would let
    tensorflow_probability's two-line distutils warning through when the apps import
    tensorflow_privacy. With ``verbose`` every warning is shown.
    """
    with paused_collector():  # seconds of collections that free nothing (common.collector)
        quiet_environment(verbose)
        import flwr.simulation  # noqa: F401

        quiet_environment(verbose)
        import clients.app  # noqa: F401
        import server.app  # noqa: F401


class Interrupted(Exception):
    """The run was stopped by a signal; ``summary.json`` says ``"status": "interrupted"``."""

    def __init__(self, signum: int, run_dir: Path, last_round: int | None) -> None:
        self.signum, self.run_dir, self.last_round = signum, run_dir, last_round
        name = signal.Signals(signum).name
        after = "before round 0" if last_round is None else f"after round {last_round}"
        super().__init__(f"interrupted by {name} {after}; files in {run_dir}")

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


@dataclass
class Stops:
    """Why a session was stopped from outside the ServerApp, if it was."""

    signals: list[int] = field(default_factory=list)
    engine_errors: list[BaseException] = field(default_factory=list)


def _await_engine(engine: threading.Thread, stop: StopRequest) -> None:
    """Wait for the engine thread; once a stop is asked, at most ``STOP_GRACE_S`` more.

    The main thread waits here in short joins so that signal handlers run promptly.
    """
    while engine.is_alive() and not stop.is_set():
        engine.join(0.2)
    engine.join(STOP_GRACE_S)


def run_scenario(
    scenario: Scenario,
    *,
    verbose: bool = False,
    resume: Path | None = None,
    ray_address: str | None = None,
) -> RunResult:
    """Run ``scenario`` end to end, or continue the run in ``resume`` from its last round;
    raises the ServerApp's own error if it failed.

    ``ray_address``: a running Ray cluster to attach to (:mod:`fedshield.ray_cluster`);
    None starts a private local Ray.
    """
    # Output, key files, GPUs: fail in one line, before Ray starts (a cluster's GPUs are on its
    # nodes, not necessarily on this host).
    check_backend(scenario, ray_address)
    check_environment(scenario, local_gpus=ray_address is None)
    import_apps(verbose)
    from server.app import RunOutcome, build_server_app

    point = None if resume is None else resume_point(resume, scenario)
    run_dir = new_run_dir(scenario) if resume is None else resume
    atomic_write_json(run_dir / "scenario.json", scenario.model_dump(mode="json"))
    outcome = RunOutcome()
    stops = run_session(
        scenario,
        build_server_app(scenario, run_dir, outcome, point),
        outcome.stop,
        server_failed=lambda: outcome.error is not None,
        verbose=verbose,
        ray_address=ray_address,
    )
    return _result(run_dir, outcome, stops)


def run_session(
    scenario: Scenario,
    server_app: ServerApp,
    stop: StopRequest,
    *,
    server_failed: Callable[[], bool],
    verbose: bool,
    ray_address: str | None = None,
    pool_size: int | None = None,
    check: bool = True,
) -> Stops:
    """One Flower simulation of ``server_app`` on a private Ray or the cluster at ``ray_address``
    (checked unless ``check`` is off; at most ``pool_size`` client actors); what stopped it.

    ``scenario`` fixes the virtual clients (number, resources, trust anchor: every scenario
    ``server_app`` serves agrees on them). A signal or an engine failure sets ``stop``;
    ``server_failed()`` says whether the ServerApp recorded its own error (Flower re-raises it).
    """
    from flwr.simulation import run_simulation

    from clients.app import app as client_app
    from clients.secagg import app as secagg_client_app

    # The clients' trust anchor, inherited by the Ray workers: never taken from a message.
    os.environ.update(ClientTrust.of(scenario.integrity, scenario.seed).environment())
    if not verbose:
        # fedshield reports failures itself, in one line; Flower would print tracebacks.
        logging.getLogger("flwr").setLevel(logging.CRITICAL)
    stops = Stops()

    def on_signal(signum: int) -> None:
        stops.signals.append(signum)
        stop.request(f"signal {signal.Signals(signum).name}")

    def on_engine_failure(err: BaseException) -> None:
        stops.engine_errors.append(err)
        stop.request(f"the simulation engine failed: {type(err).__name__}")

    backend_name, engine_host = _backend(
        scenario, on_engine_failure, ray_address, pool_size, verbose=verbose, check=check
    )

    def simulate() -> None:
        install_dispatch()  # messages reach the workers when pushed, not at the next poll
        try:
            run_simulation(
                server_app=server_app,
                client_app=secagg_client_app if scenario.secure_aggregation.enabled else client_app,
                num_supernodes=scenario.data.num_clients,
                backend_name=backend_name,
                backend_config=backend_config(scenario),
                verbose_logging=verbose,
            )
        except Exception as err:
            if not server_failed() and not stops.engine_errors:
                stops.engine_errors.append(err)

    with engine_host, stop_on_signals(on_signal):
        _await_engine(run_in_thread(simulate), stop)
    return stops


def _backend(
    scenario: Scenario,
    on_failure: Callable[[BaseException], None],
    ray_address: str | None,
    pool_size: int | None,
    *,
    verbose: bool,
    check: bool,
) -> tuple[str, AbstractContextManager[Any]]:
    """The engine backend's registered name, and what hosts it for the session: a private Ray or
    the cluster at ``ray_address``, or nothing for ``simulation.backend = "process"``, whose
    clients share this process's TensorFlow runtime (sized and made deterministic as a client
    actor's would be)."""
    if scenario.simulation.backend == "process":
        configure_tensorflow(int(scenario.simulation.num_cpus))
        return register_process_backend(), nullcontext()
    init_args = ray_init_args(scenario, verbose)
    host = ray_for_run(scenario, ray_address, init_args, verbose=verbose, check=check)
    return register_watched_backend(on_failure, pool_size), host


def _result(run_dir: Path, outcome: RunOutcome, stops: Stops) -> RunResult:
    """The run's result, or the one exception that says why there is none."""
    if stops.signals:
        last = None if outcome.summary is None else outcome.summary.get("last_round")
        raise Interrupted(stops.signals[0], run_dir, last)
    if stops.engine_errors:
        err = stops.engine_errors[0]
        raise FedshieldError(
            f"the simulation engine failed: {type(err).__name__}: {first_line(err)} "
            f"(files in {run_dir})"
        ) from err
    if outcome.error is not None:
        if isinstance(outcome.error, FedshieldError):
            raise outcome.error
        raise FedshieldError(
            f"the run failed: {type(outcome.error).__name__}: {first_line(outcome.error)} "
            f"(files in {run_dir})"
        ) from outcome.error
    if outcome.summary is None:
        raise FedshieldError(
            f"the simulation stopped before finishing; rerun with --verbose (files in {run_dir})"
        )
    return RunResult(run_dir, outcome.summary)

"""The ServerApp of Flower's Deployment Engine: ``flwr run . local-deployment``.

The simulation's ServerApp (:func:`server.app.build_server_app`) is bound to a scenario that the
runner has validated; under ``flwr run`` the SuperLink starts the app named in pyproject's
``[tool.flwr.app.components]``, a module-level object, and the scenario arrives in
``context.run_config["scenario"]``: a packaged scenario name, a TOML path on the SuperLink's
machine, or the scenario itself as JSON (``fedshield run`` writes one as ``scenario.json``).
The ClientApp is the simulation's own (``clients.app:app``); each SuperNode names its partition,
its key directory and its data in ``--node-config`` (:mod:`clients.deployment`).

What a deployment refuses, in one line, before the first round:

- ``attack``: poisoners and in-transit attacks are simulated by the server and its clients
  in ``fedshield run``; a deployment's clients are real machines, its network a real network.
- ``simulation.faults``: injected crashes and hangs are a simulation device.
- integrity with seed-derived keys: the seed travels in every train message, so anyone on the
  network could sign as the server or as any client; a deployment signs with files
  (``fedshield keys generate``), the server holding its private key and every client's
  public key, each SuperNode its own private key and the server's public key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from logging import ERROR, INFO
from typing import Any

from flwr.app import Context
from flwr.common.logger import log
from flwr.server import Grid
from flwr.serverapp import ServerApp

from common.crypto.keys import client_public_keys, server_key, server_public_key
from common.errors import ConfigError, FedshieldError
from common.results import atomic_write_json
from common.schema import Scenario
from fedshield.runner import new_run_dir
from scenarios.loader import read_scenario, validate_document
from scenarios.preflight import check_output
from server.app import RunOutcome, build_server_app

SCENARIO_KEY = "scenario"
"""The run-config entry that names the scenario (``[tool.flwr.app.config]``)."""


def scenario_from_run_config(run_config: Mapping[str, Any]) -> Scenario:
    """The scenario ``run_config["scenario"]`` names or holds, validated."""
    value = run_config.get(SCENARIO_KEY)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"run_config.{SCENARIO_KEY}: got {value!r}; expected a packaged scenario name, "
            "a scenario TOML path on the SuperLink's machine, or a scenario as JSON"
        )
    if not value.lstrip().startswith("{"):
        return read_scenario(value)
    try:
        document = json.loads(value)
    except ValueError as err:
        raise ConfigError(f"run_config.{SCENARIO_KEY}: not valid JSON ({err})") from None
    return validate_document(document)


def check_deployable(scenario: Scenario) -> None:
    """Refuse what exists only in simulation, and integrity keys that protect nothing."""
    if scenario.attack.enabled:
        raise ConfigError(
            f"attack.type: got {scenario.attack.type!r}; poisoners and in-transit attacks are "
            "simulated and run only under `fedshield run`: a deployment needs attack.type = "
            '"none"'
        )
    if scenario.simulation.faults.enabled:
        raise ConfigError(
            f"simulation.faults: got {scenario.simulation.faults.model_dump()}; injected "
            "faults run only under `fedshield run`: disable them for a deployment"
        )
    if scenario.integrity.enabled and scenario.integrity.keys_dir is None:
        raise ConfigError(
            "integrity.keys_dir: got None; seed-derived keys protect nothing across a network: "
            "write keys with `fedshield keys generate` and set integrity.keys_dir"
        )


def check_server_keys(scenario: Scenario) -> None:
    """Open the keys the server reads: its own pair and every client's public key."""
    if not scenario.integrity.enabled:
        return
    config, seed = scenario.integrity, scenario.seed
    try:
        server_key(config, run_seed=seed)
        server_public_key(config, run_seed=seed)
        client_public_keys(config, run_seed=seed, partition_ids=range(scenario.data.num_clients))
    except (OSError, FedshieldError) as err:  # unreadable, missing, not PEM, too open
        raise ConfigError(
            f"integrity.keys_dir: got {config.keys_dir!r}; {err}: the server needs "
            "server_0000.key/.pub and client_NNNN.pub for every client 0 to "
            f"{scenario.data.num_clients - 1}"
        ) from None


server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    """Validate the run's scenario, refuse what a deployment cannot run, then serve it."""
    try:
        scenario = scenario_from_run_config(context.run_config)
        check_deployable(scenario)
        check_output(scenario.output)
        check_server_keys(scenario)
    except FedshieldError as err:
        log(ERROR, "error: %s", err)  # the one line `flwr run --stream` and `flwr log` show
        raise
    run_dir = new_run_dir(scenario)
    atomic_write_json(run_dir / "scenario.json", scenario.model_dump(mode="json"))
    outcome = RunOutcome()
    build_server_app(scenario, run_dir, outcome)(grid, context)
    if outcome.error is not None:
        log(ERROR, "error: %s (files in %s)", outcome.error, run_dir)
        raise outcome.error
    log(INFO, "done: files in %s", run_dir)

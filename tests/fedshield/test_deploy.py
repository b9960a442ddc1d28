"""The deployment ServerApp's scenario (from run_config) and what it refuses, in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from common.crypto.keys import generate_keys
from common.errors import ConfigError
from fedshield.deploy import check_deployable, check_server_keys, scenario_from_run_config
from scenarios.loader import read_scenario


def test_the_scenario_comes_by_name_by_path_or_as_json(tmp_path: Path) -> None:
    by_name = scenario_from_run_config({"scenario": "quickstart"})
    assert (by_name.name, by_name.data.num_clients) == ("quickstart", 10)
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nseed = 3\nrounds = 2\n[data]\nnum_clients = 2\n')
    by_path = scenario_from_run_config({"scenario": str(path)})
    assert (by_path.name, by_path.seed, by_path.rounds) == ("mine", 3, 2)
    as_json = scenario_from_run_config({"scenario": by_path.model_dump_json()})
    assert as_json == by_path


@pytest.mark.parametrize("value", [None, "", 3, "{not json"])
def test_a_missing_or_bad_scenario_entry_is_one_line_naming_it(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^run_config\.scenario: ") as err:
        scenario_from_run_config({} if value is None else {"scenario": value})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (['attack.type="sign_flip"', "attack.malicious=1"], "attack.type"),
        (['attack.type="additive"', "attack.malicious=1"], "attack.type"),
        (["simulation.faults.crash=0.2"], "simulation.faults"),
        (["integrity.enabled=true"], "integrity.keys_dir"),
    ],
)
def test_simulated_adversaries_faults_and_seed_keys_are_refused(
    overrides: list[str], field: str
) -> None:
    scenario = read_scenario("quickstart", overrides)
    with pytest.raises(ConfigError, match=rf"^{field}: got ") as err:
        check_deployable(scenario)
    assert "\n" not in str(err.value)


def test_an_honest_scenario_with_key_files_is_deployable(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    generate_keys(keys, num_clients=2)
    server = tmp_path / "server"
    server.mkdir()
    # The server's directory holds no client private key.
    for name in ("server_0000.key", "server_0000.pub", "client_0000.pub", "client_0001.pub"):
        shutil.copy2(keys / name, server / name)
    overrides = ["data.num_clients=2", "integrity.enabled=true", f'integrity.keys_dir="{server}"']
    scenario = read_scenario("quickstart", overrides)
    check_deployable(scenario)
    check_server_keys(scenario)

    (server / "client_0001.pub").unlink()
    with pytest.raises(ConfigError, match=r"^integrity\.keys_dir: .*client_0001\.pub") as err:
        check_server_keys(scenario)
    assert "\n" not in str(err.value)


def test_pyproject_names_the_apps_and_the_local_federation() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    app = pyproject["tool"]["flwr"]["app"]
    assert app["components"] == {
        "serverapp": "fedshield.deploy:server_app",
        "clientapp": "clients.app:app",
    }
    assert app["config"] == {"scenario": "quickstart"}
    federation = pyproject["tool"]["flwr"]["federations"]["local-deployment"]
    assert federation == {"address": "127.0.0.1:9093", "insecure": True}
    from clients.app import app as client_app
    from fedshield.deploy import server_app

    assert (type(server_app).__name__, type(client_app).__name__) == ("ServerApp", "ClientApp")
    assert json.loads(json.dumps(app["config"])) == app["config"]

"""Scenario files: structure, overrides and the one-line errors, all before Ray starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from scenarios.loader import apply_overrides, load_scenario, packaged_scenarios, validate_document

MINIMAL = {"name": "t", "seed": 1, "rounds": 2}


def _error(document: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as info:
        validate_document(document)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_every_packaged_scenario_validates() -> None:
    names = packaged_scenarios()
    assert "quickstart" in names
    for name in names:
        scenario = load_scenario(name)
        assert scenario.name
        assert scenario.rounds >= 1


def test_quickstart_resolves_defaults() -> None:
    s = load_scenario("quickstart")
    assert (s.data.dataset, s.data.num_clients, s.defense.aggregator, s.attack.type) == (
        "digits",
        10,
        "fedavg",
        "none",
    )
    assert s.num_sampled == 10
    assert s.dp.enabled is False and s.integrity.enabled is False


def test_unknown_key_names_the_field() -> None:
    assert _error({**MINIMAL, "train": {"local_epoch": 2}}) == (
        "train.local_epoch: unknown key (value 2); remove it or fix the spelling"
    )


def test_wrong_type_names_field_value_and_allowed() -> None:
    message = _error({**MINIMAL, "train": {"batch_size": "big"}})
    assert message.startswith("train.batch_size: got 'big'; ")
    assert "integer" in message


def test_out_of_range_value() -> None:
    message = _error({**MINIMAL, "rounds": 0})
    assert message == "rounds: got 0; Input should be greater than or equal to 1"


def test_missing_required_field() -> None:
    assert _error({"name": "t", "seed": 1}) == "rounds: required field is missing"


def test_literal_lists_allowed_values() -> None:
    message = _error({**MINIMAL, "train": {"optimizer": "rmsprop"}})
    assert message.startswith("train.optimizer: got 'rmsprop'; ")
    assert "'sgd'" in message and "'adam'" in message


def test_cross_field_error_names_its_field() -> None:
    message = _error({**MINIMAL, "clients_per_round": 11, "data": {"num_clients": 10}})
    assert message == "clients_per_round: got 11; a count must be at most data.num_clients (10)"


def test_unknown_plugin_lists_valid_names() -> None:
    message = _error({**MINIMAL, "defense": {"aggregator": "krumm"}})
    assert message.startswith("defense.aggregator: unknown aggregator 'krumm'; valid: ")
    assert "krum" in message and "median" in message


def test_unknown_dataset_and_model_name_their_field() -> None:
    assert _error({**MINIMAL, "data": {"dataset": "imagenet"}}).startswith(
        "data.dataset: unknown dataset 'imagenet'; valid: "
    )
    assert _error({**MINIMAL, "model": {"name": "resnet"}}).startswith(
        "model.name: unknown model 'resnet'; valid: cnn, lenet5, mlp"
    )


def test_plugin_parameter_error_names_its_path() -> None:
    message = _error(
        {**MINIMAL, "data": {"partition": {"scheme": "dirichlet", "params": {"alpha": -1}}}}
    )
    assert message.startswith("data.partition.params.alpha: got -1; ")


def test_aggregator_bound_checked_against_clients_per_round() -> None:
    message = _error(
        {
            **MINIMAL,
            "clients_per_round": 6,
            "defense": {"aggregator": "krum", "params": {"num_byzantine": 2}},
        }
    )
    assert message.startswith("defense.aggregator: ")
    assert "7" in message and "6" in message


def test_root_dataset_is_required_by_fltrust_and_refused_elsewhere() -> None:
    message = _error({**MINIMAL, "defense": {"aggregator": "fltrust"}})
    assert message.startswith("defense.root_size: got 0; fltrust ")
    message = _error({**MINIMAL, "defense": {"aggregator": "median", "root_size": 50}})
    assert message.startswith("defense.root_size: got 50; median does not use")
    message = _error({**MINIMAL, "defense": {"aggregator": "fltrust", "root_size": -1}})
    assert message.startswith("defense.root_size: got -1; ")
    scenario = validate_document(
        {**MINIMAL, "defense": {"aggregator": "fltrust", "root_size": 100}}
    )
    assert scenario.defense.root_size == 100


def test_attack_without_malicious_clients_is_refused() -> None:
    message = _error({**MINIMAL, "attack": {"type": "sign_flip", "malicious": 0}})
    assert message.startswith("attack.malicious: got 0; ")


def test_missing_seed_is_resolved_once() -> None:
    s = validate_document({"name": "t", "rounds": 1})
    assert isinstance(s.seed, int) and 0 <= s.seed < 2**31


def test_overrides_parse_toml_values_and_bare_strings() -> None:
    doc = apply_overrides(
        MINIMAL, ["train.local_epochs=3", "defense.aggregator=median", "train.learning_rate=0.5"]
    )
    assert doc["train"] == {"local_epochs": 3, "learning_rate": 0.5}
    assert doc["defense"] == {"aggregator": "median"}
    assert MINIMAL == {"name": "t", "seed": 1, "rounds": 2}  # the input is not modified


def test_override_is_validated_like_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = "t"\nseed = 1\nrounds = 2\n')
    assert load_scenario(path, ["train.local_epochs=2"]).train.local_epochs == 2
    with pytest.raises(ConfigError, match=r"^train.local_epochs: got 0; "):
        load_scenario(path, ["train.local_epochs=0"])


def test_malformed_override_and_missing_file() -> None:
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        apply_overrides(MINIMAL, ["rounds"])
    with pytest.raises(ConfigError, match="no packaged scenario"):
        load_scenario("does-not-exist")

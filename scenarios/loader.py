"""Read a scenario TOML file (``tomllib``), apply ``--set`` overrides, validate, check plug-ins.

Every failure is a :class:`~common.errors.ConfigError` whose message is one line naming the
field, the value and what is allowed; all of it happens before Ray starts.
"""

from __future__ import annotations

import secrets
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.errors import ConfigError
from common.schema import Scenario
from common.validation import one_line


def packaged_scenarios() -> list[str]:
    """Names of the scenario files shipped as package data (``fedshield run NAME``)."""
    root = resources.files("scenarios")
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


def _read_toml(source: str | Path) -> dict[str, Any]:
    path = Path(source)
    if not path.exists():
        packaged = resources.files("scenarios") / f"{source}.toml"
        if not packaged.is_file():
            raise ConfigError(
                f"scenario: no file {str(source)!r} and no packaged scenario of that name; "
                f"packaged: {', '.join(packaged_scenarios())}"
            )
        text = packaged.read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"scenario {str(source)!r}: not valid TOML ({err})") from None


def _parse_value(raw: str) -> Any:
    """A ``--set`` value is a TOML value (``2``, ``0.5``, ``true``, ``"krum"``, ``[1, 2]``).

    Anything that does not parse as one is a bare string (``--set defense.aggregator=krum``).
    """
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_overrides(document: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``document`` with each ``dotted.key=value`` override set."""
    result: dict[str, Any] = _deep_copy(document)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set: got {item!r}; expected dotted.key=value")
        *parents, leaf = key.strip().split(".")
        node = result
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part!r} is a value, not a table")
            node = child
        node[leaf] = _parse_value(raw.strip())
    return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def validate_document(document: Mapping[str, Any]) -> Scenario:
    """Validate a parsed document into a :class:`Scenario` and check every plug-in it names.

    A missing ``seed`` is drawn once here and written into the resolved scenario, so every run
    is reproducible from its run directory.
    """
    document = dict(document)
    document.setdefault("seed", secrets.randbelow(2**31))
    try:
        scenario = Scenario.model_validate(document)
    except ValidationError as err:
        raise ConfigError(one_line(err)) from None
    check_plugins(scenario)
    return scenario


def load_scenario(source: str | Path, overrides: Iterable[str] = ()) -> Scenario:
    """Read, override, validate: the one entry point used by the CLI and the tests."""
    return validate_document(apply_overrides(_read_toml(source), overrides))


def check_plugins(scenario: Scenario) -> None:
    """Resolve every registry name and validate plug-in parameters and bounds (stage 2)."""
    # Imported here: the registries pull in TensorFlow, which the schema alone does not need.
    from attacks import attack_plan
    from common.attack_schedule import select_malicious
    from common.data.datasets import DATASETS
    from common.data.partitioners import PARTITIONERS
    from common.dp_checks import check_dp_shards
    from common.learning.models import MODELS
    from strategies import build_chain

    data = scenario.data
    DATASETS.resolve(data.dataset, "data.dataset")
    PARTITIONERS.resolve(data.partition.scheme, "data.partition.scheme")
    PARTITIONERS.parse_params(data.partition.scheme, data.partition.params, "data.partition.params")
    MODELS.resolve(scenario.model.name, "model.name")

    attack = scenario.attack
    attack_plan(attack)  # every name, every parameter, and which kinds may be combined
    malicious = select_malicious(data.num_clients, attack.malicious, scenario.seed)
    if attack.enabled and not malicious:
        raise ConfigError(
            f"attack.malicious: got {attack.malicious!r}; attack {attack.type!r} needs at least "
            "one malicious client"
        )
    if len(malicious) >= data.num_clients:
        raise ConfigError(
            f"attack.malicious: got {attack.malicious!r}; at least one client must stay honest "
            f"(data.num_clients = {data.num_clients})"
        )

    chain = build_chain(
        scenario.defense.aggregator,
        scenario.defense.params,
        [(step.name, step.params) for step in scenario.defense.pre],
    )
    if chain.min_clients() > scenario.num_sampled:
        raise ConfigError(
            f"defense.aggregator: {chain.name} needs at least {chain.min_clients()} updates per "
            f"round, but clients_per_round gives {scenario.num_sampled}"
        )
    _check_root_dataset(scenario.defense.root_size, chain.name, chain.needs_reference())
    if scenario.defense.root_size:
        from common.data.shards import dataset_of, root_indices

        root_indices(scenario, dataset_of(scenario))  # the split must hold the root set
    if scenario.dp.enabled:
        scenario.dp.microbatch_size(scenario.train.batch_size)
    check_dp_shards(scenario)  # delta against shard sizes, idle shards (common/dp_checks.py)
    if scenario.dp.enabled and scenario.dp.mode == "central":
        _check_central_dp(scenario)


def _check_root_dataset(root_size: int, chain: str, needs_reference: bool) -> None:
    """A rule scored against the server's own update needs a root dataset; others must not."""
    if needs_reference and root_size == 0:
        raise ConfigError(
            f"defense.root_size: got 0; {chain} scores updates against the server's update on "
            "its clean root dataset: set defense.root_size >= 1 (Cao et al. use 100)"
        )
    if root_size and not needs_reference:
        raise ConfigError(
            f"defense.root_size: got {root_size}; {chain} does not use a server root dataset "
            "(only fltrust does): remove the field"
        )


def _check_central_dp(scenario: Scenario) -> None:
    """Client-level DP is calibrated to the clipped *unweighted mean* of the sampled updates."""
    defense = scenario.defense
    if defense.aggregator != "fedavg" or defense.params.get("weighted", True) or defense.pre:
        raise ConfigError(
            f"dp.mode: got 'central' with defense.aggregator {defense.aggregator!r} "
            f"(params {dict(defense.params)}, {len(defense.pre)} pre-steps); client-level DP noise "
            "is calibrated to the clipped unweighted mean, so only fedavg with weighted = false "
            "and no pre-steps is allowed (noise before a median or Krum has no stated guarantee)"
        )
    if scenario.integrity.enabled:
        raise ConfigError(
            "dp.mode: got 'central' with integrity.enabled = true; Flower's central-DP wrapper "
            "clips the replies before the integrity gate sees them, which breaks their signed "
            "digests: run the two in separate scenarios"
        )

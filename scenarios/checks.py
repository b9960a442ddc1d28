"""Stage 2 of validation: every plug-in the scenario names, and the data it deals, before Ray.

Plug-ins declare what they need and this module reads the declarations; it names no plug-in:

* a rule's ``needs_reference`` (it scores updates against the server's update on a root set)
  or ``needs_features`` (it reads the models' representations of the root set)
  decides whether ``defense.root_size`` is required or refused;
* a rule's ``unweighted_mean_when`` decides whether it can carry central DP's noise;
* a :data:`~common.registry.ClassLabel` parameter must be a class of the dataset;
* a dataset's declared files are opened by loading it (:mod:`common.data.datasets`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any

from pydantic import BaseModel

from common.collector import paused_collector
from common.errors import ConfigError
from common.registry import Registry, class_labels
from common.schema import Scenario


def check_plugins(scenario: Scenario) -> None:
    """Resolve every registry name, validate plug-in parameters and bounds, then the data."""
    # Imported here: the registries pull in TensorFlow, which the schema alone does not need.
    with paused_collector():  # seconds of collections that free nothing (common.collector)
        from attacks import attack_plan
        from common.crfl_config import check_crfl
        from common.data.datasets import DATASETS
        from common.data.partitioners import PARTITIONERS
        from common.dp_checks import check_dp_shards
        from common.inversion_config import check_inversion
        from common.learning.models import MODELS
        from common.secagg_config import check_secure_aggregation
        from strategies import build_chain

    data = scenario.data
    DATASETS.resolve(data.dataset, "data.dataset")
    DATASETS.parse_params(data.dataset, data.params, "data.params")
    PARTITIONERS.resolve(data.partition.scheme, "data.partition.scheme")
    PARTITIONERS.parse_params(data.partition.scheme, data.partition.params, "data.partition.params")
    MODELS.resolve(scenario.model.name, "model.name")
    if scenario.robustness.distillation.enabled:
        MODELS.resolve(scenario.robustness.distillation.student, "robustness.distillation.student")

    attack = scenario.attack
    plan = attack_plan(attack)  # every name, every parameter, and which kinds may be combined
    server_side = (plan.collusion, plan.transit, plan.adaptive)
    check_secure_aggregation(scenario, any(a is not None for a in server_side))
    check_crfl(scenario.crfl, secure_aggregation=scenario.secure_aggregation.enabled)
    _check_malicious_count(scenario)

    chain = build_chain(
        scenario.defense.aggregator,
        scenario.defense.params,
        [(step.name, step.params) for step in scenario.defense.pre],
        post=scenario.server_optimizer.stages,
    )
    if chain.min_clients() > scenario.num_sampled:
        raise ConfigError(
            f"defense.aggregator: {chain.name} needs at least {chain.min_clients()} updates per "
            f"round, but clients_per_round gives {scenario.num_sampled}"
        )
    _check_root_dataset(
        scenario.defense.root_size, chain.name, chain.needs_reference(), chain.needs_features()
    )
    if scenario.dp.enabled:
        _check_dp(scenario)
    check_inversion(scenario.inversion, num_clients=data.num_clients, rounds=scenario.rounds)
    check_data(scenario)
    _check_input_shapes(scenario, plan)
    check_dp_shards(scenario)  # delta against shard sizes, idle shards (common/dp_checks.py)


def _check_malicious_count(scenario: Scenario) -> None:
    """At least one malicious client when an attack is on, and at least one honest client."""
    from common.attack_schedule import select_malicious

    attack, num_clients = scenario.attack, scenario.data.num_clients
    malicious = select_malicious(num_clients, attack.malicious, scenario.seed)
    if attack.enabled and not malicious:
        raise ConfigError(
            f"attack.malicious: got {attack.malicious!r}; attack {attack.type!r} needs at least "
            "one malicious client"
        )
    if len(malicious) >= num_clients:
        raise ConfigError(
            f"attack.malicious: got {attack.malicious!r}; at least one client must stay honest "
            f"(data.num_clients = {num_clients})"
        )


def _check_input_shapes(scenario: Scenario, plan: Any) -> None:
    """An attack that declares the image shapes it takes (IBA's generator) refuses others."""
    from common.data.shards import dataset_of

    shape = tuple(dataset_of(scenario).input_shape)
    for field in fields(plan):
        allowed = getattr(getattr(plan, field.name), "input_shapes", None)
        if allowed is not None and shape not in allowed:
            takes = " or ".join("x".join(map(str, s)) for s in allowed)
            raise ConfigError(
                f"data.dataset: got {scenario.data.dataset!r} ({'x'.join(map(str, shape))} "
                f"images); attack {scenario.attack.type!r} takes {takes} images only: use a "
                "dataset of that shape (mnist, fashion_mnist, synthetic_mnist)"
            )


def _check_dp(scenario: Scenario) -> None:
    """DP's microbatches, central DP's conditions, and FedProx left out of DP-SGD."""
    scenario.dp.microbatch_size(scenario.train.batch_size)
    if scenario.dp.mode == "central":
        _check_central_dp(scenario)
    if scenario.dp.mode == "local" and scenario.train.proximal_mu > 0:
        raise ConfigError(
            f"train.proximal_mu: got {scenario.train.proximal_mu}; FedProx's term is not part of "
            "the DP-SGD model (per-example clipping covers the data loss only): use 0 with "
            "dp.mode = 'local'"
        )


def _names_declaring(flag: str) -> str:
    """The aggregators whose parameter model sets the class-level declaration ``flag``."""
    from strategies import AGGREGATORS

    return ", ".join(n for n in AGGREGATORS if getattr(AGGREGATORS[n].params, flag, None))


def _check_root_dataset(
    root_size: int, chain: str, needs_reference: bool, needs_features: bool
) -> None:
    """A rule scored against the server's own update, or one that reads the models' features
    on the server's examples (FLARE), needs a root dataset; others must not have one."""
    if needs_reference and root_size == 0:
        raise ConfigError(
            f"defense.root_size: got 0; {chain} scores updates against the server's update on "
            "its clean root dataset: set defense.root_size >= 1"
        )
    if needs_features and root_size < 2:
        raise ConfigError(
            f"defense.root_size: got {root_size}; {chain} compares the models' representations "
            "of the server's root examples (MMD needs 2): set defense.root_size >= 2"
        )
    if root_size and not (needs_reference or needs_features):
        users = ", ".join(
            name
            for flag in ("needs_reference", "needs_features")
            for name in _names_declaring(flag).split(", ")
            if name
        )
        raise ConfigError(
            f"defense.root_size: got {root_size}; {chain} does not use a server root dataset "
            f"(rules that do: {users}): remove the field"
        )


def _check_central_dp(scenario: Scenario) -> None:
    """Client-level DP is calibrated to the clipped *unweighted mean* of the sampled updates."""
    from strategies import AGGREGATORS
    from strategies.base import RuleStage

    defense = scenario.defense
    params = AGGREGATORS.parse_params(defense.aggregator, defense.params, "defense.params")
    when = params.unweighted_mean_when if isinstance(params, RuleStage) else None
    if defense.pre or when is None or any(getattr(params, k) != v for k, v in when.items()):
        allowed = "; ".join(
            name + _settings(AGGREGATORS[name].params)
            for name in AGGREGATORS
            if getattr(AGGREGATORS[name].params, "unweighted_mean_when", None) is not None
        )
        raise ConfigError(
            f"dp.mode: got 'central' with defense.aggregator {defense.aggregator!r} "
            f"(params {dict(defense.params)}, {len(defense.pre)} pre-steps); client-level DP "
            "noise is calibrated to the clipped unweighted mean, so only a rule computing it, "
            f"with no pre-steps, is allowed ({allowed}); noise before a median or Krum has no "
            "stated guarantee"
        )
    if scenario.server_optimizer.name != "none":
        raise ConfigError(
            f"dp.mode: got 'central' with server_optimizer.name "
            f"{scenario.server_optimizer.name!r}; the central noise is added after the server "
            "step and is calibrated to the mean, not to an optimiser's step: use 'none'"
        )
    if scenario.integrity.enabled:
        raise ConfigError(
            "dp.mode: got 'central' with integrity.enabled = true; Flower's central-DP wrapper "
            "clips the replies before the integrity gate sees them, which breaks their signed "
            "digests: run the two in separate scenarios"
        )


def _settings(model: type[BaseModel]) -> str:
    """`` with weighted = false``: the declared settings, as a scenario file writes them."""
    when: Mapping[str, object] = getattr(model, "unweighted_mean_when", None) or {}
    settings = ", ".join(f"{key} = {str(value).lower()}" for key, value in when.items())
    return f" with {settings}" if settings else ""


def check_data(scenario: Scenario) -> None:
    """Load the dataset (its files opened and parsed), deal the partition, check class labels.

    Every client must hold at least one training example, and every class-label parameter
    must name one of the dataset's classes.
    """
    from common.data.shards import dataset_of, partitions_of, root_indices

    dataset = dataset_of(scenario)
    if scenario.defense.root_size:
        root_indices(scenario, dataset)  # the split must hold the root set
    sizes = [len(part) for part in partitions_of(scenario)]
    if min(sizes) == 0:
        data = scenario.data
        raise ConfigError(
            f"data.partition.params: got {dict(data.partition.params)}; the "
            f"{data.partition.scheme!r} scheme leaves {sizes.count(0)} of {data.num_clients} "
            f"clients with no training example (seed {scenario.seed}): every client needs at "
            "least one; change the scheme's params or lower data.num_clients"
        )
    for where, params in _plugin_params(scenario):
        for field, label in class_labels(params).items():
            if label >= dataset.num_classes:
                raise ConfigError(
                    f"{where}.{field}: got {label}; must be a class of {dataset.name} "
                    f"(0 to {dataset.num_classes - 1})"
                )


def _plugin_params(scenario: Scenario) -> Iterator[tuple[str, BaseModel]]:
    """(field path, validated model) of every plug-in's ``params`` table in the scenario."""
    from attacks import ATTACKS
    from common.data.partitioners import PARTITIONERS
    from strategies import AGGREGATORS, PRE_AGGREGATORS

    partition = scenario.data.partition
    tables: list[tuple[Registry[Any], str, Mapping[str, Any], str]] = [
        (PARTITIONERS, partition.scheme, partition.params, "data.partition.params"),
        *((ATTACKS, name, params, where) for name, params, where in scenario.attack.stages()),
        (AGGREGATORS, scenario.defense.aggregator, scenario.defense.params, "defense.params"),
    ]
    tables += [
        (PRE_AGGREGATORS, step.name, step.params, f"defense.pre[{index}].params")
        for index, step in enumerate(scenario.defense.pre)
    ]
    for registry, name, params, where in tables:
        yield where, registry.parse_params(name, params, where)

"""The typed, validated ``Scenario``: one TOML file describes one federated experiment.

Validation happens in stages, all before Ray starts:

1. :class:`Scenario` (pydantic, ``extra="forbid"`` everywhere, finite floats, no boolean taken
   for a number: :class:`~common.validation.Strict`) checks structure, types and ranges;
2. :func:`scenarios.checks.check_plugins` resolves every registry name (dataset, partitioner,
   model, aggregator chain, attack), validates each plug-in's own parameters and bounds, loads
   the dataset and deals the partition;
3. :func:`scenarios.preflight.check_environment` checks the host (output directory, key files,
   GPUs).

Plug-in parameters live in ``params`` tables so that a plug-in's schema belongs to the plug-in
(one registry per plug-in kind), while this module owns only what every run shares.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from common.crfl_config import CRFLConfig
from common.dp_config import DPConfig
from common.integrity_config import IntegrityConfig
from common.inversion_config import InversionConfig
from common.robustness_config import RobustnessConfig
from common.secagg_config import SecureAggregationConfig
from common.server_optimizer_config import ServerOptimizerConfig
from common.validation import FieldError, Strict

MAX_NAME_LENGTH = 200
"""255 bytes (NAME_MAX) less the longest ``-seedSEED-YYYYmmdd-HHMMSS-k`` suffix, rounded down."""


class _Section(Strict):
    """A scenario table: unknown keys, non-finite floats and booleans for numbers are errors."""


class PartitionSpec(_Section):
    """How the training set is split over clients (``fedshield list`` shows the schemes)."""

    scheme: str = "iid"
    params: dict[str, Any] = Field(default_factory=dict)


class DataSpec(_Section):
    """Dataset, federation size and partition."""

    dataset: str = "digits"
    params: dict[str, Any] = Field(default_factory=dict)
    """The dataset's parameters (``fedshield list`` shows them; only ``hub`` takes any)."""
    num_clients: int = Field(10, ge=1, le=10_000)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    data_dir: str | None = None
    partition: PartitionSpec = PartitionSpec()


class ModelSpec(_Section):
    """Registered architecture and its L2 weight decay (the seed text's regularization defense)."""

    name: str = "mlp"
    l2: float = Field(0.0, ge=0.0)


class TrainSpec(_Section):
    """Local training of every client."""

    local_epochs: int = Field(1, ge=1, le=1000)
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["sgd", "adam"] = "sgd"
    learning_rate: float = Field(0.1, gt=0.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    proximal_mu: float = Field(0.0, ge=0.0)
    """FedProx's mu (Li et al. 2020): ``mu/2 ||w - w_t||^2`` added to the local loss; 0 is off."""


class PreAggregatorSpec(_Section):
    """One pre-aggregation step (clipping, NNM, bucketing) chained in front of the rule."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class DefenseSpec(_Section):
    """The server's aggregation chain: ``pre`` steps in order, then ``aggregator``."""

    aggregator: str = "fedavg"
    params: dict[str, Any] = Field(default_factory=dict)
    pre: tuple[PreAggregatorSpec, ...] = ()
    root_size: int = Field(0, ge=0, le=100_000)
    """Examples in the server's clean root dataset (FLTrust; Cao et al. use 100), drawn with the
    seed from the training split. Required by, and only allowed with, a rule that scores
    updates against the server's own update."""


class AttackSpec(_Section):
    """Who attacks, with what, and when. ``type = "none"`` disables the section.

    ``type`` names one attack, with its parameters in ``params``; or a list of attacks a
    malicious client applies in order (a data attack, then an update attack: Bagdasaryan et
    al.'s model replacement is ``["backdoor", "scaling"]``), with each attack's parameters in a
    table of its name (``[attack.params.scaling] gamma = 10``). Which kinds may be combined is
    checked with the registry, before Ray starts (:func:`attacks.plan.attack_plan`).
    """

    type: str | tuple[str, ...] = "none"
    params: dict[str, Any] = Field(default_factory=dict)
    malicious: int | float = Field(
        0, ge=0, description="count (int >= 0) or fraction of clients (float in [0, 1))"
    )
    start_round: int = Field(1, ge=1)
    end_round: int | None = Field(None, ge=1)
    probability: float = Field(1.0, gt=0.0, le=1.0)
    durability_threshold: float = Field(0.5, gt=0.0, le=1.0)
    """A backdoor still works while its attack success rate is at least this (durability:
    ``server.durability``)."""

    @model_validator(mode="after")
    def _check_window(self) -> AttackSpec:
        if self.end_round is not None and self.end_round < self.start_round:
            raise FieldError(
                "attack.end_round", self.end_round, f"must be >= start_round ({self.start_round})"
            )
        if isinstance(self.malicious, float) and not 0.0 <= self.malicious < 1.0:
            raise FieldError("attack.malicious", self.malicious, "a fraction must be in [0, 1)")
        return self

    @model_validator(mode="after")
    def _check_list(self) -> AttackSpec:
        if isinstance(self.type, str):
            return self
        names = list(self.type)
        if not names or len(set(names)) != len(names) or "none" in names:
            raise FieldError(
                "attack.type", names, "a list names distinct attacks, at least one, not 'none'"
            )
        for key, value in self.params.items():
            if key not in names or not isinstance(value, dict):
                raise FieldError(
                    f"attack.params.{key}",
                    value,
                    f"with a list of attacks, params holds one table per attack named in "
                    f"attack.type ({', '.join(names)})",
                )
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """The attack names in the order a malicious client applies them."""
        return (self.type,) if isinstance(self.type, str) else self.type

    @property
    def enabled(self) -> bool:
        """Whether any attack is configured (``type`` is not ``"none"``)."""
        return self.names != ("none",)

    def stages(self) -> tuple[tuple[str, dict[str, Any], str], ...]:
        """``(name, params, where)`` per attack; ``where`` names its params table for errors."""
        if isinstance(self.type, str):
            return ((self.type, dict(self.params), "attack.params"),)
        return tuple(
            (name, dict(self.params.get(name, {})), f"attack.params.{name}") for name in self.type
        )


class FaultSpec(_Section):
    """Injected client faults, for testing a federation's resilience (``docs/reliability.md``).

    Each is a probability per sampled client per round, drawn from the scenario seed, the round
    and the partition, and the three are exclusive (one draw ``u``: a crash when ``u < crash``,
    a hang when ``u < crash + hang``, a straggler when ``u < crash + hang + straggle``).
    """

    crash: float = Field(0.0, ge=0.0, le=1.0)
    """The client raises instead of training (the server records Flower's error reason)."""
    hang: float = Field(0.0, ge=0.0, le=1.0)
    """The client sleeps past the round's deadline and its reply never arrives."""
    straggle: float = Field(0.0, ge=0.0, le=1.0)
    """The client sleeps ``straggle_seconds`` before training, then replies normally."""
    straggle_seconds: float = Field(2.0, ge=0.0, le=86_400.0)

    @model_validator(mode="after")
    def _check_total(self) -> FaultSpec:
        total = self.crash + self.hang + self.straggle
        if total > 1.0:
            raise FieldError(
                "simulation.faults", total, "crash + hang + straggle must be at most 1"
            )
        return self

    @property
    def enabled(self) -> bool:
        """Whether any fault can happen."""
        return self.crash + self.hang + self.straggle > 0.0


class SimulationSpec(_Section):
    """Ray resources per virtual client, timeouts, the failed-round limit and injected faults."""

    backend: Literal["ray", "process"] = "ray"
    """Where the ClientApp runs: Flower's Ray backend (a pool of client actors, one process
    each) or ``process``: in the driver process, one message at a time, no Ray
    (:mod:`fedshield.process_backend`; for federations small enough for one process)."""
    num_cpus: float = Field(2.0, gt=0.0)
    num_gpus: float = Field(0.0, ge=0.0)
    memory_mb: int = Field(0, ge=0, description="memory Ray reserves per client actor; 0: none")
    round_timeout: float = Field(600.0, gt=0.0, description="seconds to wait for replies")
    handshake_timeout: float = Field(
        120.0, gt=0.0, description="seconds to wait for every node at the round-0 handshake"
    )
    max_failed_rounds: int = Field(3, ge=1, le=10_000)
    """The run stops with an error after this many consecutive skipped rounds (a round is
    skipped when too few updates are accepted for the rule). Consecutive, not total: a long
    sweep survives sporadic bad rounds, a federation that stopped answering does not."""
    faults: FaultSpec = FaultSpec()


class Scenario(_Section):
    """One federated experiment, fully resolved (the seed is always an integer here)."""

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=r"^[A-Za-z0-9_.-]+$")
    """Prefix of the run directory ``NAME-seedSEED-YYYYmmdd-HHMMSS[-k]``; at most
    :data:`MAX_NAME_LENGTH` characters so that name fits a file system's 255-byte limit."""
    seed: int = Field(ge=0, lt=2**31)
    rounds: int = Field(ge=1, le=10_000)
    clients_per_round: int | float = Field(
        1.0, gt=0, description="count (int >= 1) or fraction of clients (float in (0, 1])"
    )
    output: str = "runs"
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    defense: DefenseSpec = DefenseSpec()
    server_optimizer: ServerOptimizerConfig = ServerOptimizerConfig()
    attack: AttackSpec = AttackSpec()
    dp: DPConfig = DPConfig()
    integrity: IntegrityConfig = IntegrityConfig()
    robustness: RobustnessConfig = RobustnessConfig()
    crfl: CRFLConfig = CRFLConfig()
    inversion: InversionConfig = InversionConfig()
    secure_aggregation: SecureAggregationConfig = SecureAggregationConfig()
    simulation: SimulationSpec = SimulationSpec()

    @model_validator(mode="after")
    def _check_counts(self) -> Scenario:
        if isinstance(self.clients_per_round, float) and self.clients_per_round > 1.0:
            raise FieldError(
                "clients_per_round", self.clients_per_round, "a fraction must be in (0, 1]"
            )
        if (
            isinstance(self.clients_per_round, int)
            and self.clients_per_round > self.data.num_clients
        ):
            raise FieldError(
                "clients_per_round",
                self.clients_per_round,
                f"a count must be at most data.num_clients ({self.data.num_clients})",
            )
        return self

    @model_validator(mode="after")
    def _check_faults(self) -> Scenario:
        # Flower's central-DP wrapper refuses a round with a missing or failed reply outright.
        if self.simulation.faults.enabled and self.dp.enabled and self.dp.mode == "central":
            raise FieldError(
                "simulation.faults",
                self.simulation.faults.model_dump(),
                "central DP (dp.mode = 'central') needs every sampled client's reply; "
                "inject faults with local DP or without DP",
            )
        return self

    @property
    def num_sampled(self) -> int:
        """Number of clients sampled each round (a fraction rounds down, at least 1)."""
        if isinstance(self.clients_per_round, int):
            return self.clients_per_round
        return max(1, int(self.clients_per_round * self.data.num_clients))

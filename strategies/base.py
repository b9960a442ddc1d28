"""Interfaces of the aggregation library: stages with typed state, chained the way Optax chains.

A *rule* maps stacked update deltas ``(n_clients, n_params)`` and the self-reported example
counts ``(n_clients,)`` to one ``(n_params,)`` aggregate. A *pre-aggregator* maps them to new
``(n', n_params)`` updates and ``(n',)`` counts (clipping, nearest-neighbour mixing,
bucketing) in front of a rule.

Every stage, rule or pre-aggregator, is an ``init``/``update`` pair (Optax's
``GradientTransformation``) with its own typed state: a ``NamedTuple`` of frozen numpy arrays
and ints (:class:`EmptyState` when it carries nothing). A stage class is also its validated
pydantic parameter model, so each default is written once, in the field, and the bound on n
(:meth:`RuleStage.min_clients`) is checked in one place. The maths each stage runs is a pure
module-level function. :class:`strategies.chain.Chain` runs the stages in order; its state is
the tuple of its stages' states, so a run can be checkpointed and replayed.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from common.errors import AggregationError
from common.registry import Params

if TYPE_CHECKING:
    from strategies.indicator import Indicator
    from strategies.layout import Inspection

Updates = NDArray[np.floating[Any]]
"""``(n_clients, n_params)`` stacked update deltas (client weights minus global weights)."""
Counts = NDArray[np.int64]
"""``(n_clients,)`` self-reported example counts."""
Aggregate = NDArray[np.floating[Any]]
"""``(n_params,)`` aggregated update, same dtype as the input updates."""
ClientIds = NDArray[np.int64]
"""``(n_clients,)`` distinct pseudonymous client ids, stable across rounds (the server's
seeded permutation of the partitions, ``server/pseudonyms.py``)."""
StageState = tuple[Any, ...]
"""One stage's state: a ``NamedTuple`` of read-only numpy arrays and ints."""
ChainState = tuple[StageState, ...]
"""A chain's state: its stages' states, pre-aggregators first, the rule's last."""
S = TypeVar("S", bound=StageState)


class EmptyState(NamedTuple):
    """The state of a stage that carries nothing between rounds (Optax's ``EmptyState``)."""


def frozen(array: NDArray[Any]) -> NDArray[Any]:
    """``array`` made read-only: a state value is never changed, only replaced."""
    array.setflags(write=False)
    return array


class RuleStage(Params, Generic[S]):
    """An aggregation rule: its parameters (the pydantic fields) and its ``init``/``update``."""

    bound: ClassVar[str] = "none"
    """The bound on n as the paper states it, for error messages."""
    uses_rng: ClassVar[bool] = False
    """Whether :meth:`update` draws from ``rng`` (DnC's and SignGuard's coordinate subsets); a
    contract test checks that the other rules give the same answer for any generator."""
    needs_reference: ClassVar[bool] = False
    """Whether :meth:`update` needs ``reference=``: the server's own ``(n_params,)`` update this
    round (FLTrust's root-dataset update), checked finite and of the right shape by the chain."""
    needs_client_ids: ClassVar[bool] = False
    """Whether the rule keys state by client (:class:`IdentifiedRule`): the chain then passes
    the round's pseudonymous ``client_ids`` to ``update_identified``."""
    unweighted_mean_when: ClassVar[Mapping[str, object] | None] = None
    """Parameter values with which the rule returns the plain unweighted mean of its inputs,
    the aggregate that client-level DP noise is calibrated to (McMahan et al. 2018); ``None``
    if it never does. The scenario checks allow ``dp.mode = "central"`` only with such a rule."""

    def min_clients(self) -> int:
        """Smallest number of updates the rule's bound admits."""
        return 1

    @abstractmethod
    def init(self, num_params: int) -> S:
        """The state before round 1."""

    @abstractmethod
    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: S,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, S]:
        """Aggregate one round (inputs already checked against the bound); the next state."""


class MemorylessRule(RuleStage[EmptyState]):
    """A rule that carries nothing between rounds; it may still use ``rng`` or ``reference``."""

    def init(self, num_params: int) -> EmptyState:
        return EmptyState()


class IdentifiedRule(RuleStage[S]):
    """A rule that keeps per-client state across rounds (FoolsGold), keyed by the
    pseudonymous ids the chain passes; it cannot sit behind a pre-aggregator, which mixes rows."""

    needs_client_ids: ClassVar[bool] = True

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: S,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, S]:
        raise AggregationError(f"{type(self).__name__}: needs client_ids, got none")

    @abstractmethod
    def update_identified(
        self,
        updates: Updates,
        num_examples: Counts,
        state: S,
        *,
        client_ids: ClientIds,
        rng: np.random.Generator,
    ) -> tuple[Aggregate, S]:
        """Aggregate one round whose row i comes from client ``client_ids[i]``."""


class StatelessRule(MemorylessRule):
    """A rule that carries nothing between rounds (Optax's ``stateless``) and uses neither
    ``rng`` nor ``reference``: one pure function of the updates and counts."""

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: EmptyState,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None,
    ) -> tuple[Aggregate, EmptyState]:
        return self.aggregate(updates, num_examples), state

    @abstractmethod
    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        """The rule's pure function applied with this model's parameters."""


class PreStage(Params, Generic[S]):
    """A pre-aggregator: its parameters (the pydantic fields) and its ``init``/``update``."""

    bound: ClassVar[str] = "none"
    uses_rng: ClassVar[bool] = False
    """Whether :meth:`update` draws from ``rng`` (bucketing's permutation)."""

    def min_clients(self, downstream: int = 1) -> int:
        """Smallest n for which this stage's own bound holds and its output has ``downstream``."""
        return max(1, downstream)

    @abstractmethod
    def init(self, num_params: int) -> S:
        """The state before round 1."""

    @abstractmethod
    def update(
        self, updates: Updates, num_examples: Counts, state: S, *, rng: np.random.Generator
    ) -> tuple[Updates, Counts, S]:
        """Map one round's ``(updates, counts)`` to the next stage's; the next state."""


class MemorylessPre(PreStage[EmptyState]):
    """A pre-aggregator that carries nothing between rounds; it may still use ``rng``."""

    def init(self, num_params: int) -> EmptyState:
        return EmptyState()


class StatelessPre(MemorylessPre):
    """A pre-aggregator that carries nothing between rounds and draws nothing from ``rng``: one
    pure function of the updates and counts."""

    def update(
        self, updates: Updates, num_examples: Counts, state: EmptyState, *, rng: np.random.Generator
    ) -> tuple[Updates, Counts, EmptyState]:
        return *self.transform(updates, num_examples), state

    @abstractmethod
    def transform(self, updates: Updates, num_examples: Counts) -> tuple[Updates, Counts]:
        """The pre-aggregator's pure function applied with this model's parameters."""


class ServerStage(Params, Generic[S]):
    """A server optimiser after the rule: its parameters and its ``init``/``update``, which
    turns the rule's aggregate into the step the global model takes (FedAdam, momentum)."""

    @abstractmethod
    def init(self, num_params: int) -> S:
        """The state before round 1."""

    @abstractmethod
    def update(self, aggregate: Aggregate, state: S) -> tuple[Aggregate, S]:
        """The step for this round's aggregate (same shape and dtype); the next state."""


class Rule(Protocol):
    """What :func:`strategies.get_aggregator` and :func:`strategies.build_chain` return."""

    @property
    def name(self) -> str:
        """The registry name, or the stage names joined by ``+`` for a chain."""
        ...

    def min_clients(self) -> int:
        """Smallest n the strictest stage's bound admits (1 if none)."""
        ...

    def needs_reference(self) -> bool:
        """Whether :meth:`update` needs ``reference=`` (the server's own update this round)."""
        ...

    def needs_client_ids(self) -> bool:
        """Whether :meth:`update` needs ``client_ids=`` (per-client state, FoolsGold)."""
        ...

    def needs_layout(self) -> bool:
        """Whether :meth:`update` needs ``inspection=`` (the model's layout: LASA, DeepSight)."""
        ...

    def needs_ddifs(self) -> bool:
        """Whether that inspection must carry the output probe too (DeepSight)."""
        ...

    def indicator_task(self) -> Indicator | None:
        """The indicator task the server must plant before broadcast (BackdoorIndicator)."""
        ...

    def needs_features(self) -> bool:
        """Whether that inspection must carry the feature probe too (FLARE)."""
        ...

    def init(self, num_params: int) -> ChainState:
        """The state before round 1: one frozen state per stage."""
        ...

    def update(
        self,
        updates: Updates,
        num_examples: Counts,
        state: ChainState,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None = None,
        client_ids: ClientIds | None = None,
        inspection: Inspection | None = None,
    ) -> tuple[Aggregate, ChainState]:
        """Aggregate one round; return the aggregate and the next state."""
        ...

    def __call__(
        self,
        updates: Updates,
        num_examples: Counts,
        *,
        reference: Aggregate | None = None,
        inspection: Inspection | None = None,
    ) -> Aggregate:
        """One :meth:`update` from :meth:`init` with ``rng=default_rng(0)`` (and, for a rule
        that needs them, the row indices as client ids: one round has no history)."""
        ...

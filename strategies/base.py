"""Interfaces of the aggregation library: rules, pre-aggregators and their composition.

A *rule* maps stacked update deltas ``(n_clients, n_params)`` and the self-reported example
counts ``(n_clients,)`` to one ``(n_params,)`` aggregate. A *pre-aggregator* maps them to new
``(n', n_params)`` updates and ``(n',)`` counts (clipping, nearest-neighbour mixing,
bucketing) and chains in front of a rule the way Optax chains gradient transforms.

Every rule is a pure function registered with a pydantic parameter model; the model knows the
rule's bound on ``n`` (:meth:`RuleParams.min_clients`), so the bound is checked in one place.
State carried between rounds (centred clipping's centre) is explicit: :meth:`Rule.init` makes
it, :meth:`Rule.step` takes it and returns the next one, frozen, so a run can be replayed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.typing import NDArray

from common.errors import AggregationError
from common.registry import Params

Updates = NDArray[np.floating[Any]]
"""``(n_clients, n_params)`` stacked update deltas (client weights minus global weights)."""
Counts = NDArray[np.int64]
"""``(n_clients,)`` self-reported example counts."""
Aggregate = NDArray[np.floating[Any]]
"""``(n_params,)`` aggregated update, same dtype as the input updates."""

RuleFunction = Callable[..., Aggregate]
"""``fn(updates, num_examples, **params) -> aggregate``; also ``previous=`` if stateful,
``rng=`` if randomised and ``reference=`` if it scores updates against the server's own."""
PreFunction = Callable[..., tuple[Updates, Counts]]
"""``fn(updates, num_examples, **params) -> (updates', counts')`` (``rng=`` if random)."""


class RuleParams(Params):
    """Parameters of an aggregation rule; subclasses override the bound and the state flag."""

    bound: ClassVar[str] = "none"
    """The bound on n as the paper states it, for error messages."""
    carries_state: ClassVar[bool] = False
    """If true the rule function takes ``previous=`` (the last aggregate, zeros at init)."""
    uses_rng: ClassVar[bool] = False
    """If true the rule function takes ``rng=`` (DnC's random coordinate subsets)."""
    needs_reference: ClassVar[bool] = False
    """If true the rule function takes ``reference=``: the server's own ``(n_params,)`` update
    this round (FLTrust's root-dataset update), which the server computes and passes to
    :meth:`Rule.step`."""

    def min_clients(self) -> int:
        """Smallest number of updates the rule's bound admits."""
        return 1


class PreParams(Params):
    """Parameters of a pre-aggregator; subclasses override the bound and the rng flag."""

    bound: ClassVar[str] = "none"
    uses_rng: ClassVar[bool] = False
    """If true the pre-aggregator function takes ``rng=`` (bucketing's permutation)."""

    def min_clients(self, downstream: int) -> int:
        """Smallest n for which this stage's own bound holds and its output has ``downstream``."""
        return max(1, downstream)


class Rule(Protocol):
    """What :func:`strategies.get_aggregator` and :func:`strategies.build_chain` return."""

    @property
    def name(self) -> str:
        """The registry name, or the stage names joined by ``+`` for a chain."""
        ...

    def min_clients(self) -> int:
        """Smallest n the rule's bound admits (1 if none)."""
        ...

    def init(self, num_params: int) -> object:
        """Explicit, frozen state before round 1 (``None`` for stateless rules)."""
        ...

    def needs_reference(self) -> bool:
        """Whether :meth:`step` needs ``reference=`` (the server's own update this round)."""
        ...

    def step(
        self,
        updates: Updates,
        num_examples: Counts,
        state: object,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None = None,
    ) -> tuple[Aggregate, object]:
        """Aggregate one round; return the aggregate and the next state."""
        ...

    def __call__(
        self, updates: Updates, num_examples: Counts, *, reference: Aggregate | None = None
    ) -> Aggregate:
        """One step from the initial state with ``rng=default_rng(0)``."""
        ...


def check_round(name: str, updates: Updates, num_examples: Counts, needed: int, bound: str) -> None:
    """Raise :class:`AggregationError` (one line) unless the inputs fit a rule with this bound."""
    if updates.ndim != 2 or not np.issubdtype(updates.dtype, np.floating):
        raise AggregationError(
            f"{name}: updates must be a 2-D float array (n_clients, n_params), "
            f"got shape {updates.shape} dtype {updates.dtype}"
        )
    n = updates.shape[0]
    if num_examples.shape != (n,):
        raise AggregationError(
            f"{name}: num_examples must have shape ({n},), got {num_examples.shape}"
        )
    if n < needed:
        raise AggregationError(
            f"{name}: received n={n} updates, its bound needs n >= {needed} ({bound})"
        )


def check_reference(name: str, reference: Aggregate | None, num_params: int) -> Aggregate:
    """``reference`` if it is a finite ``(num_params,)`` float array, else one-line error."""
    if reference is None:
        raise AggregationError(
            f"{name}: needs reference= (the server's own update this round), got none"
        )
    if reference.shape != (num_params,) or not np.issubdtype(reference.dtype, np.floating):
        raise AggregationError(
            f"{name}: reference must be a ({num_params},) float array, "
            f"got shape {reference.shape} dtype {reference.dtype}"
        )
    if not np.all(np.isfinite(reference)):
        raise AggregationError(f"{name}: reference contains NaN or Inf")
    return reference


def _frozen(array: NDArray[np.float64]) -> NDArray[np.float64]:
    array.setflags(write=False)
    return array


class OneStepCall(ABC):
    """``__call__`` as one :meth:`step` from :meth:`init` with ``rng=default_rng(0)``: the
    one-round convenience every :class:`Rule` implementation shares."""

    @abstractmethod
    def init(self, num_params: int) -> object:
        """Explicit, frozen state before round 1."""

    @abstractmethod
    def step(
        self,
        updates: Updates,
        num_examples: Counts,
        state: object,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None = None,
    ) -> tuple[Aggregate, object]:
        """Aggregate one round; return the aggregate and the next state."""

    def __call__(
        self, updates: Updates, num_examples: Counts, *, reference: Aggregate | None = None
    ) -> Aggregate:
        state = self.init(updates.shape[1]) if updates.ndim == 2 else None
        return self.step(
            updates, num_examples, state, rng=np.random.default_rng(0), reference=reference
        )[0]


@dataclass(frozen=True)
class FunctionRule(OneStepCall):
    """A registered pure rule function bound to its validated parameters (implements Rule)."""

    name: str
    function: RuleFunction
    params: RuleParams

    def min_clients(self) -> int:
        return self.params.min_clients()

    def needs_reference(self) -> bool:
        return self.params.needs_reference

    def init(self, num_params: int) -> object:
        if self.params.carries_state:
            return _frozen(np.zeros(num_params, dtype=np.float64))
        return None

    def step(
        self,
        updates: Updates,
        num_examples: Counts,
        state: object,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None = None,
    ) -> tuple[Aggregate, object]:
        # Deterministic rules ignore ``rng``; the protocol carries it for randomised rules and
        # pre-aggregators so a whole chain is replayable from one seed.
        check_round(self.name, updates, num_examples, self.min_clients(), self.params.bound)
        kwargs: dict[str, Any] = dict(self.params)
        if self.params.uses_rng:
            kwargs["rng"] = rng
        if self.params.needs_reference:
            kwargs["reference"] = check_reference(self.name, reference, updates.shape[1])
        if not self.params.carries_state:
            return self.function(updates, num_examples, **kwargs), None
        if not isinstance(state, np.ndarray) or state.shape != (updates.shape[1],):
            raise AggregationError(
                f"{self.name}: state must be the ({updates.shape[1]},) array from init/step"
            )
        result = self.function(updates, num_examples, previous=state, **kwargs)
        return result, _frozen(result.astype(np.float64))


@dataclass(frozen=True)
class FunctionPreAggregator:
    """A registered pure pre-aggregator bound to its validated parameters."""

    name: str
    function: PreFunction
    params: PreParams

    def min_clients(self, downstream: int = 1) -> int:
        """Smallest n for which this stage and a downstream stage needing ``downstream`` fit."""
        return self.params.min_clients(downstream)

    def __call__(
        self, updates: Updates, num_examples: Counts, *, rng: np.random.Generator
    ) -> tuple[Updates, Counts]:
        check_round(self.name, updates, num_examples, self.min_clients(), self.params.bound)
        kwargs: dict[str, Any] = dict(self.params)
        if self.params.uses_rng:
            kwargs["rng"] = rng
        return self.function(updates, num_examples, **kwargs)


@dataclass(frozen=True)
class Chain(OneStepCall):
    """Pre-aggregators applied in order, then a rule (implements Rule).

    ``min_clients`` is the strictest bound of the chain, computed backwards: the rule needs
    ``k`` rows, so the last pre-aggregator needs ``min_clients(k)`` rows, and so on.
    """

    name: str
    """Stage names joined by ``+`` (``nnm+krum``)."""
    pre: Sequence[FunctionPreAggregator]
    rule: Rule

    def min_clients(self) -> int:
        needed = self.rule.min_clients()
        for stage in reversed(self.pre):
            needed = stage.min_clients(needed)
        return needed

    def needs_reference(self) -> bool:
        return self.rule.needs_reference()

    def init(self, num_params: int) -> object:
        return self.rule.init(num_params)

    def step(
        self,
        updates: Updates,
        num_examples: Counts,
        state: object,
        *,
        rng: np.random.Generator,
        reference: Aggregate | None = None,
    ) -> tuple[Aggregate, object]:
        check_round(self.name, updates, num_examples, self.min_clients(), "strictest stage")
        for stage in self.pre:
            updates, num_examples = stage(updates, num_examples, rng=rng)
        return self.rule.step(updates, num_examples, state, rng=rng, reference=reference)

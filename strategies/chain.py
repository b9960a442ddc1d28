"""Pre-aggregators applied in order, a rule, then server optimisers: Optax's ``chain`` for
aggregation stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.errors import AggregationError, ConfigError
from strategies.base import (
    Aggregate,
    ChainState,
    ClientIds,
    Counts,
    IdentifiedRule,
    PreStage,
    RuleStage,
    ServerStage,
    Updates,
)
from strategies.checks import check_client_ids, check_reference, check_round
from strategies.indicator import Indicator
from strategies.layout import InspectingRule, Inspection, check_inspection


@dataclass(frozen=True)
class Chain:
    """Pre-aggregators applied in order, a rule, then server optimisers (implements
    :class:`strategies.Rule`).

    The state is the tuple of the stages' states: pre-aggregators, the rule, the optimisers.
    The optimisers (``post``) turn the rule's aggregate into the step the global model takes,
    so every rule composes with every optimiser. ``min_clients`` is
    the strictest bound of the chain, computed backwards: the rule needs ``k`` rows, so the
    last pre-aggregator needs ``min_clients(k)`` rows, and so on. Every stage draws from the
    one ``rng`` in order, so the whole chain replays from one seed.
    """

    name: str
    """The rule's registry name, or the stage names joined by ``+`` (``nnm+krum``)."""
    pre: Sequence[PreStage[Any]]
    rule: RuleStage[Any]
    post: Sequence[ServerStage[Any]] = ()

    def min_clients(self) -> int:
        needed = self.rule.min_clients()
        for stage in reversed(self.pre):
            needed = stage.min_clients(needed)
        return needed

    def needs_reference(self) -> bool:
        return self.rule.needs_reference

    def needs_client_ids(self) -> bool:
        return self.rule.needs_client_ids

    def needs_layout(self) -> bool:
        return isinstance(self.rule, InspectingRule)

    def needs_ddifs(self) -> bool:
        return isinstance(self.rule, InspectingRule) and self.rule.needs_ddifs

    def indicator_task(self) -> Indicator | None:
        return self.rule if isinstance(self.rule, Indicator) else None

    def needs_features(self) -> bool:
        return isinstance(self.rule, InspectingRule) and self.rule.needs_features

    def __post_init__(self) -> None:
        if self.rule.needs_client_ids and self.pre:
            raise ConfigError(
                f"defense.pre: got {len(self.pre)} pre-steps before {self.name}; its per-client "
                "state needs each row to be one client's update, and pre-aggregators mix rows"
            )

    def init(self, num_params: int) -> ChainState:
        return (
            *(stage.init(num_params) for stage in self.pre),
            self.rule.init(num_params),
            *(stage.init(num_params) for stage in self.post),
        )

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
        """Aggregate one round; return the aggregate and the next state (one per stage).
        ``client_ids`` (pseudonymous, stable across rounds) and ``inspection`` (the model's
        layout) reach a rule that needs them."""
        bound = "strictest stage" if self.pre else self.rule.bound
        check_round(self.name, updates, num_examples, self.min_clients(), bound)
        stages = len(self.pre) + 1 + len(self.post)
        if not isinstance(state, tuple) or len(state) != stages:
            raise AggregationError(
                f"{self.name}: state must be the tuple of {stages} stage states "
                f"from init/update, got {type(state).__name__}"
            )
        if self.rule.needs_reference:
            reference = check_reference(self.name, reference, updates.shape[1])
        next_states = []
        for stage, stage_state in zip(self.pre, state, strict=False):
            updates, num_examples, stage_state = stage.update(
                updates, num_examples, stage_state, rng=rng
            )
            next_states.append(stage_state)
        rule_at = len(self.pre)
        if isinstance(self.rule, InspectingRule):
            checked = check_inspection(
                self.name,
                inspection,
                updates.shape[1],
                self.rule.needs_ddifs,
                self.rule.needs_features,
            )
            aggregate = self.rule.update_inspected(updates, num_examples, inspection=checked)
            rule_state = state[rule_at]
        elif isinstance(self.rule, IdentifiedRule):
            ids = check_client_ids(self.name, client_ids, updates.shape[0])
            aggregate, rule_state = self.rule.update_identified(
                updates, num_examples, state[rule_at], client_ids=ids, rng=rng
            )
        else:
            aggregate, rule_state = self.rule.update(
                updates, num_examples, state[rule_at], rng=rng, reference=reference
            )
        next_states.append(rule_state)
        for optimiser, optimiser_state in zip(self.post, state[rule_at + 1 :], strict=True):
            aggregate, optimiser_state = optimiser.update(aggregate, optimiser_state)
            next_states.append(optimiser_state)
        return aggregate, tuple(next_states)

    def __call__(
        self,
        updates: Updates,
        num_examples: Counts,
        *,
        reference: Aggregate | None = None,
        inspection: Inspection | None = None,
    ) -> Aggregate:
        """One :meth:`update` from :meth:`init` with ``rng=default_rng(0)``."""
        state = self.init(updates.shape[1] if updates.ndim == 2 else 0)
        ids = np.arange(updates.shape[0]) if self.rule.needs_client_ids else None
        return self.update(
            updates,
            num_examples,
            state,
            rng=np.random.default_rng(0),
            reference=reference,
            client_ids=ids,
            inspection=inspection,
        )[0]

"""One round's values: its result, the hand-off to evaluation, and the round's stacked updates.

:class:`RoundResult` is what a round produced, built once by the strategy at the end of
``aggregate_train`` and then only read: evaluation, privacy accounting and the run log take it
from the :class:`RoundSink`. Flower's ``evaluate_fn`` receives only ``(round, arrays)``, so the
strategy puts each result in the sink it was given and the ``evaluate`` function takes it out
for the same round. The sink holds one round, never weights: the server's memory stays flat
over any number of rounds.

:class:`RoundUpdates` stacks the deltas of a round's replies once; the adversary and the gate
replace or select rows, they never stack again.

:class:`ChainView` is the deployed chain as an omniscient attacker sees it before the round's
step: the chain's current state and a copy of the round's generator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from common.arrays import flatten, stack_deltas
from common.protocol import TrainReply
from common.schema import Scenario
from common.seeding import derive_rng
from server.client_stats import ClientRound, client_statistics
from strategies.base import (
    Aggregate,
    ChainState,
    ClientIds,
    Counts,
    Rule,
    Updates,
)
from strategies.layout import Inspection
from strategies.view import as_aggregator


def sample_partitions(
    scenario: Scenario, partitions: Sequence[int], server_round: int
) -> list[int]:
    """The partition ids of a round's clients, drawn with the scenario seed (sorted)."""
    rng = derive_rng(scenario.seed, "sample", server_round)
    chosen = rng.choice(sorted(partitions), size=scenario.num_sampled, replace=False)
    return sorted(int(p) for p in chosen)


@dataclass(frozen=True)
class TrainingRecord:
    """How one honest client trained in a round (what the privacy accountant composes)."""

    partition_id: int
    local_steps: int
    sampling_rate: float


@dataclass(frozen=True)
class RoundResult:
    """What happened in one round, for evaluation, privacy accounting and ``metrics.jsonl``."""

    server_round: int
    started: float
    """``time.perf_counter()`` when the round's messages were built."""
    sampled: tuple[int, ...]
    """Partition ids the server sent the round to (seeded)."""
    tampered: tuple[int, ...] = ()
    """Sampled partitions whose link the wire adversary altered (ground truth, metrics only)."""
    num_replies: int = 0
    failures: Mapping[int, str] = field(default_factory=dict)
    """Sampled partitions that sent no usable reply, with why: the client's own error message
    (Flower's ``Message.error.reason``) or that no reply came before the round's deadline."""
    refused: Mapping[int, str] = field(default_factory=dict)
    rejected: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    flagged: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    accepted: tuple[int, ...] = ()
    skipped: str | None = None
    train_loss: float = float("nan")
    honest_replies: tuple[TrainingRecord, ...] = ()
    """What each honest client that replied said about its training; never its weights."""
    attack: Mapping[str, float] = field(default_factory=dict)
    """The colluding attack's diagnostics of the round (empty when none acted)."""
    timing: Mapping[str, float] = field(default_factory=dict)
    """Seconds per step of the round (``server/timing.py``), evaluation excepted."""
    clients: tuple[ClientRound, ...] = ()
    """Each stacked reply's norm and cosine to the aggregate (``server.client_stats``)."""

    @property
    def num_failures(self) -> int:
        """Sampled clients that sent no usable reply (an error or nothing before the deadline)."""
        return len(self.failures)


class RoundSink:
    """Hands each round's result from the strategy to the ``evaluate`` function.

    It keeps the latest result only (Flower evaluates round r right after aggregating it), plus
    the set of partitions ever accepted, which membership inference needs at the end.
    """

    def __init__(self) -> None:
        self._latest: RoundResult | None = None
        self.ever_accepted: set[int] = set()

    def put(self, result: RoundResult) -> None:
        """Called by the strategy when a round's aggregation is done."""
        self._latest = result
        self.ever_accepted.update(result.accepted)

    def take(self, server_round: int) -> RoundResult | None:
        """The result of ``server_round``; None for round 0 (the initial model)."""
        latest, self._latest = self._latest, None
        if server_round == 0:
            return None
        if latest is None or latest.server_round != server_round:
            raise RuntimeError(f"no aggregation result for round {server_round}")
        return latest


@dataclass(frozen=True)
class RoundUpdates:
    """A round's replies and their deltas, stacked once: row i is ``replies[i]``'s delta.

    ``deltas[i] = flatten(replies[i].arrays) - flatten(base)`` in float32, read-only.
    """

    replies: tuple[TrainReply, ...]
    deltas: NDArray[np.float32]
    base_flat: NDArray[np.float32]

    @classmethod
    def stack(
        cls, replies: Sequence[TrainReply], base: Sequence[NDArray[np.float32]]
    ) -> RoundUpdates:
        """Stack the deltas of ``replies`` (their arrays must have the shapes of ``base``)."""
        deltas = stack_deltas([r.arrays for r in replies], base)
        deltas.setflags(write=False)
        base_flat = flatten(base)
        base_flat.setflags(write=False)
        return cls(tuple(replies), deltas, base_flat)

    def replaced(self, changes: Mapping[int, TrainReply]) -> RoundUpdates:
        """The same round with ``changes[i]`` in place of reply i; only those rows are redone."""
        if not changes:
            return self
        deltas = self.deltas.copy()
        replies = list(self.replies)
        for index, reply in changes.items():
            replies[index] = reply
            np.subtract(flatten(reply.arrays), self.base_flat, out=deltas[index])
        deltas.setflags(write=False)
        return RoundUpdates(tuple(replies), deltas, self.base_flat)

    def statistics(
        self, new_global: Sequence[NDArray[np.float32]] | None
    ) -> tuple[ClientRound, ...]:
        """Per-row figures against the aggregate step (``new_global`` None: a skipped round)."""
        step = None if new_global is None else flatten(new_global) - self.base_flat
        ids = [r.partition_id for r in self.replies]
        return client_statistics(ids, self.deltas, step)

    def num_examples(self) -> NDArray[np.int64]:
        """``(n,)`` self-reported example counts."""
        return np.array([r.num_examples for r in self.replies], dtype=np.int64)


@dataclass(frozen=True)
class ChainView:
    """The deployed chain before this round's update, read-only: what an omniscient attacker
    runs.

    Each call runs :func:`strategies.base.as_aggregator` of the chain at its current ``state``
    (a frozen value) with a fresh copy of the round's generator ``rng`` as it was when the view
    was made, so it makes the draws the server's own update will make, and an attacker's search
    over many calls never consumes the server's draws nor advances its state.

    Row order matters to an order-sensitive randomised stage (bucketing). Once the adversary
    has said where the rows of its calls sit among the round's replies (:meth:`placed`), a
    call with that many rows is put in the server's own order first: the replies' order,
    permuted by the server's seeded ``shuffle``. So the prediction is exact whenever the gate
    accepts every reply; other calls are aggregated in the order given.
    """

    chain: Rule
    state: ChainState
    rng: np.random.Generator
    reference: Aggregate | None = None
    shuffle: Callable[[int], NDArray[np.intp]] | None = None
    """The server's seeded permutation of n rows, applied before its rule runs."""
    positions: tuple[int, ...] | None = None
    """Index among the round's replies of each row of a call (set with :meth:`placed`)."""
    inspection: Inspection | None = None
    """The model's layout (and output probe) for a rule that inspects the model (LASA)."""
    client_ids: ClientIds | None = None
    """The pseudonymous id of each of the round's replies: a call placed in the server's
    order gets them too (FoolsGold); an unplaced call to such a rule fails in one line."""
    _view: Callable[[Updates, Counts], Aggregate] = field(init=False, repr=False, compare=False)
    _placed_view: Callable[[Updates, Counts], Aggregate] | None = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # A snapshot: the server goes on to draw from the generator it passed in.
        view = as_aggregator(
            self.chain,
            self.state,
            rng=self.rng,
            reference=self.reference,
            inspection=self.inspection,
        )
        object.__setattr__(self, "_view", view)
        placed = None
        if self.client_ids is not None and self.shuffle is not None:
            ids = self.client_ids[self.shuffle(len(self.client_ids))]
            placed = as_aggregator(
                self.chain,
                self.state,
                rng=self.rng,
                reference=self.reference,
                client_ids=ids,
                inspection=self.inspection,
            )
        object.__setattr__(self, "_placed_view", placed)

    def placed(self, positions: Sequence[int]) -> ChainView:
        """This view, told that row k of a call is reply ``positions[k]`` of the round."""
        return replace(self, positions=tuple(positions))

    def __call__(self, updates: Updates, num_examples: Counts) -> Aggregate:
        """The aggregate the deployed chain would return for these rows this round."""
        n = updates.shape[0]
        if self.shuffle is not None and self.positions is not None and len(self.positions) == n:
            row_at = np.empty(n, dtype=np.intp)
            row_at[list(self.positions)] = np.arange(n)  # reply index -> row of this call
            order = row_at[self.shuffle(n)]
            updates, num_examples = updates[order], num_examples[order]
            ids = self.client_ids
            if self._placed_view is not None and ids is not None and n == len(ids):
                return self._placed_view(updates, num_examples)
        return self._view(updates, num_examples)

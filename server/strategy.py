"""The one Flower strategy of fedshield: FedAvg's Message-API plumbing, fedshield's aggregation.

It subclasses flwr 1.23's Message-API ``FedAvg`` and overrides only node sampling (seeded, so a
scenario and seed always sample the same clients) and ``aggregate_train``. One round on the
server side:

    replies -> decode (a malformed reply is a recorded rejection) -> stack deltas (once)
            -> adversary (collusion, wire; simulation only; replaced rows are redone, not
               restacked) -> integrity gate (selects rows) -> shuffle with the seed
            -> aggregation chain -> new global -> (watermark) -> ledger -> RoundResult

A rule that scores updates against the server's own (FLTrust) gets that reference update from
the server's root dataset, computed before the adversary acts. An omniscient adversary is
handed a :class:`~server.round.ChainView`: the deployed chain's current state, the round's
generator and that reference, so it optimises against exactly the rule the server runs.

The aggregation chain is a pure function of the stacked deltas and example counts; it never
receives client identities. When too few updates survive for the chain's bound, the round is
skipped (the global model is kept) and the reason is recorded in ``metrics.jsonl``: one policy
for all rules, so a long sweep is never lost to one bad round (``simulation.max_failed_rounds``
consecutive ones end it). Every sampled client that sent no usable reply is recorded with why,
and a reply for another round is never aggregated (``docs/reliability.md``). The round's
:class:`~server.round.RoundResult` goes to the :class:`~server.round.RoundSink` the strategy
was given; the strategy keeps nothing of past rounds but the chain's state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.server import Grid
from flwr.serverapp.strategy import FedAvg
from numpy.typing import NDArray

from common import protocol as P
from common.arrays import unflatten
from common.errors import AggregationError
from common.protocol import TrainReply
from common.schema import Scenario
from common.seeding import derive_rng
from server.adversary import Adversary
from server.crfl import CRFLTraining
from server.decoding import DecodedReplies, decode_replies
from server.guard import IntegrityGuard
from server.inspection import ModelInspector
from server.pseudonyms import pseudonyms
from server.root_reference import RootReference
from server.round import (
    ChainView,
    RoundResult,
    RoundSink,
    RoundUpdates,
    TrainingRecord,
    sample_partitions,
)
from server.round_failures import drop_stale, round_failures, skip_reason
from server.timing import Stopwatch, client_train_split
from strategies.base import Rule

ReplyObserver = Callable[[int, Sequence[TrainReply], list[NDArray[np.float32]]], None]
"""Sees each round's received replies and the global weights they trained from."""


class FedshieldStrategy(FedAvg):
    """FedAvg's message plumbing with seeded sampling and a robust aggregation pipeline."""

    def __init__(
        self,
        *,
        scenario: Scenario,
        nodes: Mapping[int, int],
        num_params: int,
        chain: Rule,
        adversary: Adversary,
        guard: IntegrityGuard | None,
        sink: RoundSink,
        root: RootReference | None = None,
        observer: ReplyObserver | None = None,
        inspector: ModelInspector | None = None,
    ) -> None:
        super().__init__(
            fraction_train=1.0,
            fraction_evaluate=0.0,  # evaluation is centralised on the server's test set
            min_train_nodes=scenario.num_sampled,
            min_available_nodes=scenario.data.num_clients,
        )
        self.scenario = scenario
        self.nodes = dict(nodes)  # partition id -> Flower node id (from the handshake)
        self._partition_of = {node: partition for partition, node in self.nodes.items()}
        self.chain = chain
        self.adversary = adversary
        self.guard = guard
        self.sink = sink
        self.root = root
        self.observer = observer
        self.inspector = inspector  # the model's layout (and DDifs) for LASA, DeepSight
        self.chain_state = chain.init(num_params)
        self.crfl = CRFLTraining(scenario.crfl, scenario.seed) if scenario.crfl.enabled else None
        self._pseudonyms = pseudonyms(scenario.seed, scenario.data.num_clients)
        self._round = RoundResult(server_round=0, started=0.0, sampled=())
        self._global: list[NDArray[np.float32]] = []

    def summary(self) -> None:
        """Flower logs this at start; the console shows fedshield's own progress lines."""

    def _sample(self, server_round: int) -> list[int]:
        """Partition ids of this round's clients, drawn with the scenario seed."""
        return sample_partitions(self.scenario, list(self.nodes), server_round)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """One train message per sampled node, signed when integrity is on."""
        sampled = self._sample(server_round)
        self._round = RoundResult(
            server_round=server_round,
            started=time.perf_counter(),
            sampled=tuple(sampled),
            tampered=tuple(p for p in self.adversary.tampered_links(server_round) if p in sampled),
        )
        arrays = self.inspector.broadcast(arrays) if self.inspector else arrays  # indicator
        self._global = arrays.to_numpy_ndarrays()
        config[P.SERVER_ROUND] = server_round
        config[P.SCENARIO] = self.scenario.model_dump_json()
        if self.guard is not None:
            config.update(self.guard.broadcast_fields(server_round, self._global))
        messages = []
        for partition_id in sampled:
            sent = self.adversary.downlink(server_round, partition_id, self._global)
            payload = arrays if sent is self._global else ArrayRecord(sent)
            node = self.nodes[partition_id]
            signed = config  # the whole message a client obeys, for this recipient only
            if self.guard is not None:
                signature = self.guard.train_signature(server_round, node, config)
                signed = ConfigRecord({**config, **signature})
            messages.append(
                Message(
                    content=RecordDict({P.ARRAYS: payload, P.CONFIG: signed}),
                    message_type=MessageType.TRAIN,
                    dst_node_id=node,
                    # Expires with the round: a client that picks it up later skips it
                    # (clients/faults.py), so a slow round never starves the next one.
                    ttl=self.scenario.simulation.round_timeout,
                )
            )
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Decode -> stack -> adversary -> gate -> shuffle -> chain; see the module docstring."""
        replies = list(replies)
        good = [m for m in replies if not m.has_error()]
        failures = round_failures(
            self._round.sampled, replies, self._partition_of, self.scenario.simulation.round_timeout
        )
        decoded = decode_replies(good, self._partition_of, self._global)
        arrived = decoded.replies + decoded.misfits
        rng = derive_rng(self.scenario.seed, "aggregate", server_round)
        clock = Stopwatch()  # the round's time split (server/timing.py)
        with clock.step("aggregate"):
            reference = (
                self.root.update(server_round, self._global)
                if self.root is not None and self.chain.needs_reference()
                else None
            )
        updates = RoundUpdates.stack(decoded.replies, self._global)
        self._inspection = self.inspector.inspection(self._global) if self.inspector else None
        with clock.step("attack"):
            updates, attack = self._attack(server_round, updates, rng, reference)
        if self.observer is not None:  # what arrived, before the gate (server.inversion)
            self.observer(server_round, updates.replies, self._global)
        with clock.step("integrity"):
            rejected, flagged, kept = self._screen(server_round, updates, decoded)
        with clock.step("aggregate"):
            new_global, skipped = self._aggregate(server_round, updates, kept, rng, reference)
        # Against the rule's own step, before any watermark changes the global model.
        clients = updates.statistics(new_global if skipped is None else None)
        if self.crfl is not None and skipped is None:  # CRFL clips and noises the new model
            new_global = self.crfl.apply(server_round, new_global)
        if self.guard is not None:
            with clock.step("integrity"):
                new_global = self.guard.after_aggregation(server_round, new_global)
        result = RoundResult(
            server_round=server_round,
            started=self._round.started,
            sampled=self._round.sampled,
            tampered=self._round.tampered,
            num_replies=len(good) - len(decoded.refused),
            failures=failures,
            refused=decoded.refused,
            rejected=rejected,
            flagged=flagged,
            accepted=tuple(updates.replies[i].partition_id for i in kept),
            skipped=None if skipped is None else skip_reason(skipped, failures, rejected, kept),
            train_loss=_mean_loss(arrived),
            honest_replies=tuple(
                TrainingRecord(r.partition_id, r.local_steps, r.sampling_rate)
                for r in arrived
                if r.partition_id not in self.adversary.malicious
            ),
            attack=attack,
            timing=client_train_split(arrived) | clock.seconds,
            clients=clients,
        )
        self.sink.put(result)
        return ArrayRecord(new_global), MetricRecord({"train-loss": result.train_loss})

    def _attack(
        self,
        server_round: int,
        updates: RoundUpdates,
        rng: np.random.Generator,
        reference: NDArray[np.float32] | None,
    ) -> tuple[RoundUpdates, Mapping[str, float]]:
        """The simulated adversary's turn: collusion (against the deployed chain as it stands
        this round, :class:`~server.round.ChainView`), then the wire; with its diagnostics."""
        view = ChainView(
            self.chain,
            self.chain_state,
            rng,
            reference,
            partial(self._shuffle, server_round),
            inspection=self._inspection,
            client_ids=self._pseudonyms[[r.partition_id for r in updates.replies]],
        )
        updates, attack = self.adversary.collude(
            server_round, updates, self._global, aggregator=view
        )
        return self.adversary.uplink(server_round, updates), attack

    def _screen(
        self, server_round: int, updates: RoundUpdates, decoded: DecodedReplies
    ) -> tuple[dict[int, tuple[str, ...]], dict[int, tuple[str, ...]], list[int]]:
        """Rejections, flags and the indices of ``updates`` that may be aggregated.

        Without the gate, a reply whose arrays do not fit the global model is rejected here;
        with it, the gate sees those too and applies its ``shape`` policy (always a drop).
        """
        rejected = dict(decoded.rejected)
        if self.guard is None:
            rejected.update(decoded.misfit_reasons)
            return drop_stale(
                server_round, updates.replies, rejected, {}, range(len(updates.replies))
            )
        outcome = self.guard.check(
            server_round,
            [*updates.replies, *decoded.misfits],
            self._global,
            caught_before=[*decoded.refused, *decoded.rejected],
        )
        rejected.update(outcome.rejected)
        # Misfits come after the stacked rows and the gate always drops them.
        kept = [i for i in outcome.accepted if i < len(updates.replies)]
        return drop_stale(server_round, updates.replies, rejected, outcome.flagged, kept)

    def _shuffle(self, server_round: int, num_rows: int) -> NDArray[np.intp]:
        """The seeded order of the round's rows before the chain runs."""
        return derive_rng(self.scenario.seed, "shuffle", server_round).permutation(num_rows)

    def _aggregate(
        self,
        server_round: int,
        updates: RoundUpdates,
        kept: list[int],
        rng: np.random.Generator,
        reference: NDArray[np.float32] | None,
    ) -> tuple[list[NDArray[np.float32]], str | None]:
        """The new global weights and why the round was skipped (None when it was not)."""
        if not kept:
            return self._global, "no update was accepted"
        # Shuffle with the seed: no rule can exploit (or be hurt by) who replied first, and
        # forged rows are not where an attack put them.
        order = np.asarray(kept)[self._shuffle(server_round, len(kept))]
        deltas = updates.deltas[order]
        deltas.setflags(write=False)
        try:
            step, self.chain_state = self.chain.update(
                deltas,
                updates.num_examples()[order],
                self.chain_state,
                rng=rng,
                reference=reference,
                client_ids=self._pseudonyms[[updates.replies[i].partition_id for i in order]],
                inspection=self._inspection,
            )
        except AggregationError as err:
            return self._global, str(err)
        return unflatten(updates.base_flat + np.asarray(step, dtype=np.float32), self._global), None


def _mean_loss(replies: Sequence[TrainReply]) -> float:
    """Mean of the reported losses; NaN when none was reported (DP withholds them)."""
    losses = [r.train_loss for r in replies if math.isfinite(r.train_loss)]
    return float(np.mean(losses)) if losses else math.nan

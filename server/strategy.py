"""The one Flower strategy of fedshield: FedAvg's Message-API plumbing, fedshield's aggregation.

It subclasses flwr 1.23's Message-API ``FedAvg`` and overrides only node sampling (seeded, so a
scenario and seed always sample the same clients) and ``aggregate_train``. One round on the
server side:

    replies -> decode -> adversary (collusion, wire; simulation only) -> integrity gate
            -> stack deltas once -> shuffle with the seed -> aggregation chain -> unflatten once
            -> (watermark) -> ledger

A rule that scores updates against the server's own (FLTrust) gets that reference update from
the server's root dataset, computed before the adversary acts (an omniscient adversary runs the
deployed rule with it).

The aggregation chain is a pure function of the stacked deltas and example counts; it never
receives client identities. When too few updates survive for the chain's bound, the round is
skipped (the global model is kept) and the reason is recorded in ``metrics.jsonl``: one policy
for all rules, so a long sweep is never lost to one bad round.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.server import Grid
from flwr.serverapp.strategy import FedAvg
from numpy.typing import NDArray

from common import protocol as P
from common.arrays import flatten, stack_deltas, unflatten
from common.errors import AggregationError
from common.schema import Scenario
from common.seeding import derive_rng
from server.adversary import Adversary
from server.guard import IntegrityGuard
from server.replies import ClientReply, decode_reply
from server.root_reference import RootReference
from strategies.base import Rule


@dataclass
class RoundReport:
    """What happened in one round, for ``metrics.jsonl`` (filled by the strategy)."""

    server_round: int
    started: float
    sampled: list[int] = field(default_factory=list)
    num_replies: int = 0
    num_failures: int = 0
    refused: dict[int, str] = field(default_factory=dict)
    accepted: list[int] = field(default_factory=list)
    rejected: dict[int, list[str]] = field(default_factory=dict)
    flagged: dict[int, list[str]] = field(default_factory=dict)
    tampered: list[int] = field(default_factory=list)
    skipped: str | None = None
    train_loss: float = float("nan")
    honest_replies: list[ClientReply] = field(default_factory=list)


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
        root: RootReference | None = None,
    ) -> None:
        super().__init__(
            fraction_train=1.0,
            fraction_evaluate=0.0,  # evaluation is centralised on the server's test set
            min_train_nodes=scenario.num_sampled,
            min_available_nodes=scenario.data.num_clients,
        )
        self.scenario = scenario
        self.nodes = dict(nodes)  # partition id -> Flower node id (from the handshake)
        self.chain = chain
        self.adversary = adversary
        self.guard = guard
        self.root = root
        self.chain_state = chain.init(num_params)
        self.reports: dict[int, RoundReport] = {}
        self._global: list[NDArray[np.float32]] = []

    def summary(self) -> None:
        """Flower logs this at start; the console shows fedshield's own progress lines."""

    def _sample(self, server_round: int) -> list[int]:
        """Partition ids of this round's clients, drawn with the scenario seed."""
        rng = derive_rng(self.scenario.seed, "sample", server_round)
        chosen = rng.choice(sorted(self.nodes), size=self.scenario.num_sampled, replace=False)
        return sorted(int(p) for p in chosen)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """One train message per sampled node, signed when integrity is on."""
        report = RoundReport(server_round=server_round, started=time.perf_counter())
        self.reports[server_round] = report
        self._global = arrays.to_numpy_ndarrays()
        report.sampled = self._sample(server_round)
        report.tampered = [
            p for p in self.adversary.tampered_links(server_round) if p in report.sampled
        ]
        config[P.SERVER_ROUND] = server_round
        config[P.SCENARIO] = self.scenario.model_dump_json()
        if self.guard is not None:
            config.update(self.guard.broadcast_fields(server_round, self._global))
        messages = []
        for partition_id in report.sampled:
            sent = self.adversary.downlink(server_round, partition_id, self._global)
            payload = arrays if sent is self._global else ArrayRecord(sent)
            node = self.nodes[partition_id]
            signed = (  # the whole message a client obeys, for this recipient only
                config
                if self.guard is None
                else ConfigRecord(
                    {**config, **self.guard.train_signature(server_round, node, config)}
                )
            )
            messages.append(
                Message(
                    content=RecordDict({P.ARRAYS: payload, P.CONFIG: signed}),
                    message_type=MessageType.TRAIN,
                    dst_node_id=node,
                )
            )
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Adversary -> gate -> shuffle -> chain; a round the bound cannot serve is skipped."""
        report = self.reports[server_round]
        replies = list(replies)
        good = [m for m in replies if not m.has_error()]
        report.num_failures = len(replies) - len(good)
        decoded = sorted((decode_reply(m) for m in good), key=lambda r: r.partition_id)
        report.refused = {r.partition_id: r.refused for r in decoded if r.refused is not None}
        arrived = [r for r in decoded if r.refused is None]
        report.num_replies = len(arrived)
        report.honest_replies = [
            r for r in arrived if r.partition_id not in self.adversary.malicious
        ]
        if arrived:
            report.train_loss = float(np.nanmean([r.train_loss for r in arrived]))

        reference = (
            self.root.update(server_round, self._global)
            if self.root is not None and self.chain.needs_reference()
            else None
        )
        arrived = self.adversary.collude(server_round, arrived, self._global, reference=reference)
        arrived = self.adversary.uplink(server_round, arrived)
        if self.guard is not None:
            verdict = self.guard.check(server_round, arrived, self._global, refused=report.refused)
            arrived, report.rejected, report.flagged = (
                verdict.accepted,
                verdict.rejected,
                verdict.flagged,
            )
        report.accepted = [r.partition_id for r in arrived]

        new_global = self._aggregate(server_round, arrived, report, reference)
        if self.guard is not None:
            new_global = self.guard.after_aggregation(server_round, new_global)
        return ArrayRecord(new_global), MetricRecord({"train-loss": report.train_loss})

    def _aggregate(
        self,
        server_round: int,
        replies: list[ClientReply],
        report: RoundReport,
        reference: NDArray[np.float32] | None,
    ) -> list[NDArray[np.float32]]:
        if not replies:
            report.skipped = "no update was accepted"
            return self._global
        deltas = stack_deltas([r.arrays for r in replies], self._global)
        counts = np.array([r.num_examples for r in replies], dtype=np.int64)
        # Shuffle with the seed: no rule can exploit (or be hurt by) who replied first.
        order = derive_rng(self.scenario.seed, "shuffle", server_round).permutation(len(replies))
        deltas, counts = deltas[order], counts[order]
        deltas.setflags(write=False)
        try:
            step, self.chain_state = self.chain.step(
                deltas,
                counts,
                self.chain_state,
                rng=derive_rng(self.scenario.seed, "aggregate", server_round),
                reference=reference,
            )
        except AggregationError as err:
            report.skipped = str(err)
            return self._global
        return unflatten(flatten(self._global) + np.asarray(step, dtype=np.float32), self._global)

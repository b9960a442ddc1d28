"""A federation under SecAgg+: Flower's legacy workflow, fedshield's sampling, evaluation and log.

Why a second round loop. Flower 1.23's ``SecAggPlusWorkflow`` is a legacy ``Workflow``: its
``__call__`` refuses anything but a ``LegacyContext`` and drives a legacy ``Strategy``
(``configure_fit(round, parameters, client_manager)`` / ``aggregate_fit(round, results,
failures)`` with ``ClientProxy`` objects), and the client's ``secaggplus_mod`` reads the reply
in the legacy ``FitRes`` layout (``compat.recorddict_to_fitres``). The Message-API strategies
(``flwr.serverapp.strategy``, whose ``FedAvg`` fedshield's strategy subclasses) have no hook for
it: ``start`` sends and aggregates in one step. So a SecAgg+ run uses Flower's
``DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))`` with :class:`SecAggFedAvg`, Flower's
legacy ``FedAvg`` plus fedshield's seeded sampling and round bookkeeping, and the clients'
``clients.secagg.app``. Everything after the round (evaluation, ``metrics.jsonl``, privacy
accounting of local DP-SGD, ``summary.json``) is the same code as a normal run.

The server sees only the masked sum, so it has nothing to screen: the schema refuses robust
rules, the integrity gate, central DP and per-update inversion with it
(:mod:`common.secagg_config`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord, RecordDict
from flwr.common import FitIns, FitRes, Parameters, Scalar, ndarrays_to_parameters
from flwr.server import Grid, LegacyContext, ServerConfig
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg as LegacyFedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from numpy.typing import NDArray

from common import protocol as P
from common.schema import Scenario
from server.app import RunOutcome, round_evaluation, run_parts
from server.handshake import discover_partitions
from server.round import RoundResult, RoundSink, TrainingRecord, sample_partitions
from server.round_failures import FailedRounds
from server.run_summary import run_summary

Evaluate = Callable[[int, ArrayRecord], MetricRecord]


class SecAggFedAvg(LegacyFedAvg):
    """Flower's legacy FedAvg with seeded sampling and a :class:`RoundResult` per round."""

    def __init__(
        self,
        scenario: Scenario,
        nodes: Mapping[int, int],
        weights: list[NDArray[np.float32]],
        sink: RoundSink,
        evaluate: Evaluate,
        malicious: frozenset[int],
    ) -> None:
        super().__init__(
            fraction_evaluate=0.0,
            min_fit_clients=scenario.num_sampled,
            min_available_clients=scenario.data.num_clients,
            initial_parameters=ndarrays_to_parameters(weights),
            evaluate_fn=self._evaluate,
        )
        self.scenario, self.nodes, self.sink = scenario, dict(nodes), sink
        self.malicious = malicious
        self._evaluate_round = evaluate
        self._round = RoundResult(server_round=0, started=0.0, sampled=())

    def _evaluate(
        self, server_round: int, weights: list[NDArray[Any]], config: dict[str, Scalar]
    ) -> tuple[float, dict[str, Scalar]]:
        del config
        metrics = self._evaluate_round(server_round, ArrayRecord(weights))
        return float(metrics["loss"]), {k: float(v) for k, v in metrics.items()}  # type: ignore[arg-type]

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """The seeded sample of fedshield's strategy, with the scenario in the config."""
        sampled = sample_partitions(self.scenario, sorted(self.nodes), server_round)
        self._round = RoundResult(
            server_round=server_round, started=time.perf_counter(), sampled=tuple(sampled)
        )
        # Replaced by aggregate_fit; stands if SecAgg+ halts (too few clients for the threshold),
        # so the round is recorded as skipped, as a normal run records a round with no update.
        self.sink.put(replace(self._round, skipped="SecAgg+ halted before unmasking"))
        config: dict[str, Scalar] = {
            P.SERVER_ROUND: server_round,
            P.SCENARIO: self.scenario.model_dump_json(),
        }
        proxies = client_manager.all()
        return [(proxies[str(self.nodes[p])], FitIns(parameters, config)) for p in sampled]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[Any],
    ) -> tuple[Parameters | None, dict[str, Any]]:
        """Every result carries the unmasked mean already; record who took part."""
        aggregated = super().aggregate_fit(server_round, results, failures)
        metrics = [res.metrics for _, res in results]
        losses = [float(m[P.TRAIN_LOSS]) for m in metrics if P.TRAIN_LOSS in m]
        accepted = tuple(sorted(int(m[P.PARTITION_ID]) for m in metrics))
        self.sink.put(
            RoundResult(
                server_round=server_round,
                started=self._round.started,
                sampled=self._round.sampled,
                num_replies=len(results),
                failures=_failures(self._round.sampled, accepted, failures),
                accepted=accepted,
                train_loss=float(np.mean(losses)) if losses else math.nan,
                honest_replies=tuple(
                    TrainingRecord(
                        int(m[P.PARTITION_ID]), int(m[P.LOCAL_STEPS]), float(m[P.SAMPLING_RATE])
                    )
                    for m in metrics
                    if int(m[P.PARTITION_ID]) not in self.malicious
                ),
            )
        )
        return aggregated


def _failures(
    sampled: tuple[int, ...], accepted: tuple[int, ...], errors: list[Any]
) -> dict[int, str]:
    """Sampled partitions with no masked vector; SecAgg+'s errors do not name the partition."""
    reason = "; ".join(str(e) for e in errors) or "no masked vector before the deadline"
    return {p: reason for p in sampled if p not in accepted}


def run_secure_aggregation(
    grid: Grid, scenario: Scenario, strategy: SecAggFedAvg, *, max_weight: float
) -> list[NDArray[np.float32]]:
    """All rounds under SecAgg+; returns the final global weights.

    ``max_weight`` bounds the example count a client weighs its update with (the largest
    shard): SecAgg+ quantizes count / max_weight, so a loose bound costs precision.
    """
    config = scenario.secure_aggregation
    context = LegacyContext(
        context=Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={}),
        config=ServerConfig(
            num_rounds=scenario.rounds, round_timeout=scenario.simulation.round_timeout
        ),
        strategy=strategy,
    )
    secagg = SecAggPlusWorkflow(
        num_shares=config.num_shares,
        reconstruction_threshold=config.reconstruction_threshold,
        clipping_range=config.clipping_range,
        quantization_range=config.quantization_range,
        max_weight=max_weight,
        timeout=scenario.simulation.round_timeout,
    )
    DefaultWorkflow(fit_workflow=secagg)(grid, context)
    final = context.state.array_records["parameters"].to_numpy_ndarrays()
    return [np.asarray(w, np.float32) for w in final]


def _no_checkpoint(server_round: int, weights: list[NDArray[np.float32]]) -> None:
    """SecAgg+ runs write no resume checkpoint: Flower's legacy workflow keeps its own state."""
    del server_round, weights


def serve_secure(
    grid: Grid, scenario: Scenario, run_dir: Path, outcome: RunOutcome
) -> dict[str, Any]:
    """:func:`server.app.serve` for a SecAgg+ run: same evaluation, log, accounting, summary."""
    parts = run_parts(scenario, run_dir, outcome)
    evaluator, sink, privacy, weights = parts.evaluator, parts.sink, parts.privacy, parts.weights
    nodes, shard_sizes = discover_partitions(
        grid, scenario, timeout=scenario.simulation.handshake_timeout
    )
    evaluate = round_evaluation(
        evaluator,
        sink,
        parts.log,
        privacy,
        None,
        FailedRounds(scenario.simulation.max_failed_rounds),
        _no_checkpoint,
        parts.robustness,
    )
    strategy = SecAggFedAvg(scenario, nodes, weights, sink, evaluate, parts.malicious)
    final = run_secure_aggregation(
        grid, scenario, strategy, max_weight=float(max(shard_sizes.values()))
    )
    summary = run_summary(scenario, evaluator, sink.ever_accepted, final)
    summary["secure_aggregation"] = scenario.secure_aggregation.model_dump(mode="json")
    if privacy is not None:
        summary["privacy"] = privacy.summary()
    return parts.log.finish(summary)

"""The Flower ``ServerApp``: handshake, then ``strategy.start`` with centralised evaluation.

:func:`build_server_app` closes over the validated scenario and the run directory; it lives in an
importable module so nothing from ``__main__`` is pickled into Ray calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import tensorflow as tf
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.server import Grid
from flwr.serverapp import ServerApp
from numpy.typing import NDArray

from attacks import attack_plan
from common.data.datasets import Dataset
from common.data.shards import dataset_of, malicious_clients
from common.errors import FedshieldError
from common.learning.models import build_model
from common.schema import Scenario
from common.seeding import derive_seed
from server.adversary import Adversary
from server.crfl_probe import CertificationProbe, certification_probe
from server.evaluation import Evaluator
from server.guard import IntegrityGuard
from server.handshake import discover_partitions
from server.inspection import model_inspector
from server.inversion.observer import CuriousServer
from server.privacy import PrivacyTracker
from server.privacy_accounting import wrap_central_dp
from server.resume import ResumePoint, RunState, start_rounds
from server.robustness import RobustnessProbe, robustness_probe
from server.root_reference import RootReference
from server.round import RoundSink
from server.round_failures import FailedRounds
from server.run_log import RunLog
from server.run_summary import package_versions, run_summary, section_summaries
from server.stopping import RunInterrupted, StoppableGrid, StopRequest
from server.strategy import FedshieldStrategy
from strategies import build_chain
from strategies.base import Rule


@dataclass
class RunOutcome:
    """Filled by the ServerApp thread so the caller can see the summary or the real error.

    ``stop`` goes the other way: the runner sets it (a signal, an engine failure) and the
    ServerApp's grid raises :class:`RunInterrupted` at its next send or poll; ``log`` is the
    run's log, kept so the interrupted summary can still be written. ``round_lines`` receives
    the per-round progress lines (None: stdout; a sweep prints one line per cell instead).
    """

    summary: dict[str, Any] | None = None
    error: BaseException | None = None
    stop: StopRequest = field(default_factory=StopRequest)
    log: RunLog | None = None
    round_lines: TextIO | None = None


def central_dp(scenario: Scenario) -> bool:
    """Whether client-level DP wraps the strategy this run."""
    return scenario.dp.enabled and scenario.dp.mode == "central"


def initial_weights(
    scenario: Scenario, input_shape: tuple[int, ...], num_classes: int
) -> list[NDArray[np.float32]]:
    """Glorot-initialised weights drawn from the scenario seed."""
    tf.keras.utils.set_random_seed(derive_seed(scenario.seed, "init"))
    return [
        np.asarray(w, np.float32)
        for w in build_model(scenario.model.name, input_shape, num_classes).get_weights()
    ]


@dataclass(frozen=True)
class RunParts:
    """What every run of a scenario builds, whichever aggregation path serves it."""

    dataset: Dataset
    malicious: frozenset[int]
    weights: list[NDArray[np.float32]]
    evaluator: Evaluator
    privacy: PrivacyTracker | None
    robustness: RobustnessProbe | None
    log: RunLog
    sink: RoundSink
    certification: CertificationProbe | None = None


def run_parts(scenario: Scenario, run_dir: Path, outcome: RunOutcome) -> RunParts:
    """The data, the initial weights, the evaluator, the accountant, the log and the sink."""
    dataset = dataset_of(scenario)
    malicious = malicious_clients(scenario)
    # Drawn before anything else builds a model, as runs always have (it seeds TF's generator).
    weights = initial_weights(scenario, dataset.input_shape, dataset.num_classes)
    success_set = attack_plan(scenario.attack).success_set(dataset.x_test, dataset.y_test)
    evaluator = Evaluator(model_name=scenario.model.name, dataset=dataset, success_set=success_set)
    outcome.log = RunLog(run_dir, scenario, malicious, stream=outcome.round_lines)
    return RunParts(
        dataset=dataset,
        malicious=malicious,
        weights=weights,
        evaluator=evaluator,
        privacy=PrivacyTracker(scenario, malicious=malicious) if scenario.dp.enabled else None,
        robustness=robustness_probe(scenario, evaluator.model, dataset),
        log=outcome.log,
        sink=RoundSink(),
        certification=certification_probe(scenario, evaluator.model, dataset),
    )


def serve(
    grid: Grid,
    scenario: Scenario,
    run_dir: Path,
    outcome: RunOutcome,
    resume: ResumePoint | None = None,
) -> dict[str, Any]:
    """Run the whole federation (or its rounds after ``resume``); returns the summary."""
    parts = run_parts(scenario, run_dir, outcome)
    dataset, malicious, evaluator, sink = (
        parts.dataset,
        parts.malicious,
        parts.evaluator,
        parts.sink,
    )
    weights, privacy, log = parts.weights, parts.privacy, parts.log
    chain = scenario_chain(scenario)
    guard = (
        IntegrityGuard(scenario, run_dir, malicious=malicious, evaluator=evaluator)
        if scenario.integrity.enabled
        else None
    )
    curious = CuriousServer(scenario, dataset, run_dir) if scenario.inversion.enabled else None
    nodes, shard_sizes = discover_partitions(
        grid, scenario, timeout=scenario.simulation.handshake_timeout
    )
    adversary = run_adversary(scenario, parts)
    strategy = FedshieldStrategy(
        scenario=scenario,
        nodes=nodes,
        num_params=sum(w.size for w in weights),
        chain=chain,
        adversary=adversary,
        guard=guard,
        sink=sink,
        root=RootReference(scenario, dataset) if chain.needs_reference() else None,
        observer=curious,
        inspector=model_inspector(chain, scenario, dataset, weights),
    )
    if guard is not None and resume is None:
        weights = guard.start(weights, shard_sizes=shard_sizes)
    # Central DP: Flower's own wrapper clips every reply's delta before our pipeline and adds
    # noise to its output (the validator allows it only with unweighted FedAvg, integrity off).
    runner = (
        wrap_central_dp(strategy, scenario.dp, scenario.num_sampled)
        if central_dp(scenario)
        else strategy
    )
    failed = FailedRounds(scenario.simulation.max_failed_rounds)
    state = RunState(run_dir, strategy, sink, failed, guard, privacy, package_versions())
    probes = (parts.robustness, parts.certification)
    evaluate = round_evaluation(evaluator, sink, log, privacy, guard, failed, state.save, *probes)
    result = start_rounds(runner, grid, weights, evaluate, state, resume)
    final = result.arrays.to_numpy_ndarrays()
    summary = run_summary(scenario, evaluator, sink.ever_accepted, final)
    summary.update(section_summaries(scenario, final, sink, privacy, guard, curious))
    return log.finish(summary)


def run_adversary(scenario: Scenario, parts: RunParts) -> Adversary:
    """The run's simulated adversary; an adaptive attack's evaluator measures its current
    trigger (:mod:`server.adaptive`)."""
    adversary = Adversary(scenario, malicious=parts.malicious)
    if adversary.adaptive is not None:
        test = parts.dataset
        parts.evaluator.success_source = partial(
            adversary.adaptive.success_set, test.x_test, test.y_test
        )
    return adversary


def scenario_chain(scenario: Scenario) -> Rule:
    """The scenario's aggregation chain: pre-aggregators, the rule, then the server optimiser."""
    return build_chain(
        scenario.defense.aggregator,
        scenario.defense.params,
        [(step.name, step.params) for step in scenario.defense.pre],
        post=scenario.server_optimizer.stages,
    )


def round_evaluation(
    evaluator: Evaluator,
    sink: RoundSink,
    log: RunLog,
    privacy: PrivacyTracker | None,
    guard: IntegrityGuard | None,
    failed: FailedRounds,
    save: Callable[[int, list[NDArray[np.float32]]], None],
    robustness: RobustnessProbe | None = None,
    certification: CertificationProbe | None = None,
) -> Callable[[int, ArrayRecord], MetricRecord]:
    """Flower's ``evaluate_fn``: the round's result from ``sink`` -> evaluation, privacy, log.

    After the round is written, ``save`` writes the resume checkpoint, and the run ends with a
    ``RoundsFailedError`` (one ``error:`` line and a non-zero exit) when
    ``simulation.max_failed_rounds`` consecutive rounds were skipped.
    """

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        result = sink.take(server_round)
        weights = arrays.to_numpy_ndarrays()
        started = time.perf_counter()
        evaluation = evaluator.evaluate(weights)
        extra: dict[str, Any] = {}
        if robustness is not None:
            extra.update(robustness.metrics(server_round, weights))
        if certification is not None:  # CRFL's parameter smoothing
            extra.update(certification.metrics(server_round, weights))
        evaluate_seconds = time.perf_counter() - started  # clean and robust evaluation
        if privacy is not None and result is not None:
            extra.update(privacy.after_round(server_round, result))
        if guard is not None:
            extra.update(guard.round_metrics(server_round))
        log.record(server_round, evaluation, result, extra, evaluate_seconds=evaluate_seconds)
        try:
            if result is not None:
                failed.observe(result)
        finally:  # the streak is part of the state: a resumed run stops where this one would
            save(server_round, arrays.to_numpy_ndarrays())
        return MetricRecord({k: float(v) for k, v in evaluation.items()})

    return evaluate


def serve_cell(
    grid: Grid,
    scenario: Scenario,
    run_dir: Path,
    outcome: RunOutcome,
    resume: ResumePoint | None = None,
) -> None:
    """:func:`serve` one scenario on ``grid``, its summary or its error kept in ``outcome``.

    Callable several times inside one ServerApp ``main`` (a sweep's warm session): everything a
    run builds (chain, adversary, guard, evaluator, log) is built here, per call. ``resume``:
    the checkpoint a resumed run continues from.
    """
    try:
        grid = StoppableGrid(grid, outcome.stop)
        if scenario.secure_aggregation.enabled:
            # Flower's legacy workflow (server/secure_aggregation.py says why); it imports
            # this module, hence the late import. That path writes no resume checkpoint.
            from server.secure_aggregation import serve_secure

            outcome.summary = serve_secure(grid, scenario, run_dir, outcome)
        else:
            outcome.summary = serve(grid, scenario, run_dir, outcome, resume)
    except RunInterrupted as stopped:
        # The round in flight is abandoned; the summary covers the rounds already recorded.
        if outcome.log is not None:
            outcome.summary = outcome.log.finish({"stopped_by": str(stopped)}, "interrupted")
    except FedshieldError as err:
        # A one-line user error: the caller prints it; re-raising would only add the server
        # thread's traceback on stderr. Returning ends the simulation as a finished run does.
        outcome.error = err
    except BaseException as err:  # keep the real error for the caller, then let Flower stop
        outcome.error = err
        raise


def build_server_app(
    scenario: Scenario, run_dir: Path, outcome: RunOutcome, resume: ResumePoint | None = None
) -> ServerApp:
    """A ServerApp bound to one validated scenario and its run directory (``resume``: the
    checkpoint it continues from)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        del context  # the scenario is the configuration; run_config is not used
        serve_cell(grid, scenario, run_dir, outcome, resume)

    return app

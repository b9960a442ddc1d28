"""Rounds of an adaptive attack (A3FL, IBA) driven as Flower drives them, for the state tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord

from common.data.shards import dataset_of, malicious_clients
from common.schema import Scenario
from scenarios.loader import load_scenario
from server.app import initial_weights
from server.resume import ResumedStrategy, RunState, load_resume_point
from server.round_failures import FailedRounds
from strategies import build_chain
from tests.server._round import GRID, client_reply, make_strategy, partition_of

VERSIONS = {"fedshield": "1"}


def honest_weights(  # type: ignore[no-untyped-def]
    global_arrays: list[np.ndarray], server_round: int, partition: int, noise: float
):
    """An honest reply: the global model plus seeded Gaussian noise of scale ``noise``."""
    rng = np.random.default_rng([server_round, partition])
    return [(a + rng.normal(0, noise, a.shape)).astype(np.float32) for a in global_arrays]


def fresh(  # type: ignore[no-untyped-def]
    tmp_path: Path, scenario: Scenario, base: list[np.ndarray], malicious: frozenset[int]
):
    """Every server object built afresh, as serve() does for a run (or a sweep's cell)."""
    chain = build_chain("fedavg", {})
    strategy = make_strategy(
        scenario, chain, num_params=sum(w.size for w in base), malicious=malicious
    )
    state = RunState(tmp_path, strategy, strategy.sink, FailedRounds(3), None, None, VERSIONS)
    return strategy, state


def play(strategy, shifted, rounds: range, arrays: list[np.ndarray], noise: float):  # type: ignore[no-untyped-def]
    """Each round's new global model and the attack's state (its arrays) after it."""
    out = []
    for flower_round in rounds:
        sent = shifted.configure_train(flower_round, ArrayRecord(arrays), ConfigRecord(), GRID)
        server_round = int(next(iter(sent)).content["config"]["server-round"])
        replies = [
            client_reply(m, honest_weights(arrays, server_round, partition_of(m), noise))
            for m in sent
        ]
        record, _ = shifted.aggregate_train(flower_round, replies)
        arrays = record.to_numpy_ndarrays()
        strategy.sink.take(server_round)
        out.append((arrays, [a.copy() for a in strategy.adversary.adaptive.state]))
    return out


def straight_and_resumed(  # type: ignore[no-untyped-def]
    tmp_path: Path,
    scenario: Scenario,
    base: list[np.ndarray],
    malicious: frozenset[int],
    noise: float,
    *,
    total: int,
    stop: int,
):
    """The run played straight for ``total`` rounds, the same run killed after
    round ``stop`` and resumed from its checkpoint by a new process (its rounds, then the
    resumed ones), and the checkpoint."""
    strategy, _ = fresh(tmp_path, scenario, base, malicious)
    straight = play(strategy, strategy, range(1, total + 1), base, noise)
    strategy, state = fresh(tmp_path, scenario, base, malicious)
    first = play(strategy, strategy, range(1, stop + 1), base, noise)
    state.save(stop, first[-1][0])
    strategy, state = fresh(tmp_path, scenario, base, malicious)  # a new process
    point = load_resume_point(tmp_path, scenario, VERSIONS)
    state.restore(point)
    shifted = ResumedStrategy(strategy, stop)
    resumed = play(strategy, shifted, range(1, total - stop + 1), point.weights, noise)
    return straight, first + resumed, point


def setting(overrides: list[str]):  # type: ignore[no-untyped-def]
    """The quickstart with ``overrides``: the scenario, its dataset, the initial global model and
    the malicious clients."""
    scenario = load_scenario("quickstart", overrides)
    data = dataset_of(scenario)
    base = initial_weights(scenario, data.input_shape, data.num_classes)
    return scenario, data, base, malicious_clients(scenario)

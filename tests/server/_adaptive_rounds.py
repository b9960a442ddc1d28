"""Rounds of an adaptive attack (A3FL, IBA) driven as Flower drives them, for the state tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord

from common.schema import Scenario
from server.resume import RunState
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

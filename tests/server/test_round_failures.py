"""Rounds that fail loudly: late replies, client errors, the failed-round limit (no Ray).

Adversaries and accidents: a client whose reply for round r arrives during round r+1 (a slow
network, or a replay by anyone who saw it), clients that raise, and a federation whose clients
all stop answering.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Error, Message

from common.crypto.keys import client_key
from scenarios.loader import load_scenario
from server.evaluation import Evaluator
from server.guard import IntegrityGuard
from server.round import RoundResult
from server.round_failures import FailedRounds, RoundsFailedError
from server.strategy import FedshieldStrategy
from strategies import build_chain
from tests.server._round import GRID, client_reply, make_strategy, partition_of, play_round

BASE = [np.zeros((2, 2), np.float32), np.zeros(3, np.float32)]
ONES = [np.ones(a.shape, np.float32) for a in BASE]
# What Flower's simulation puts in Message.error.reason when a ClientApp raises.
FLOWER_REASON = (
    "<class 'flwr.clientapp.client_app.ClientAppException'>:<'\n"
    "Exception ClientAppException occurred. Message: out of memory on\n  this node'>"
)


def _strategy(
    *overrides: str, guard: bool = False, tmp_path: Path | None = None
) -> FedshieldStrategy:
    scenario = load_scenario("quickstart", [*overrides, *(["integrity.enabled=true"] * guard)])
    chain = build_chain(scenario.defense.aggregator, scenario.defense.params)
    if not guard:
        return make_strategy(scenario, chain, num_params=7)
    assert tmp_path is not None
    evaluator = cast(Evaluator, SimpleNamespace(model=None, dataset=None))  # no watermark
    integrity = IntegrityGuard(scenario, tmp_path, malicious=frozenset(), evaluator=evaluator)
    base = integrity.start(BASE, shard_sizes=dict.fromkeys(range(10), 10))
    assert all(np.array_equal(a, b) for a, b in zip(base, BASE, strict=True))
    return make_strategy(scenario, chain, num_params=7, guard=integrity)


def _late_round(strategy: FedshieldStrategy, key: bool) -> RoundResult:
    """Round 1 times out for partition 0; its round-1 reply then arrives in round 2."""
    scenario = strategy.scenario
    sign = (  # noqa: E731
        (lambda p: client_key(scenario.integrity, run_seed=scenario.seed, partition_id=p))
        if key
        else (lambda p: None)
    )
    round1 = list(strategy.configure_train(1, ArrayRecord(BASE), ConfigRecord(), GRID))
    late = next(m for m in round1 if partition_of(m) == 0)
    late_weights = [np.full(a.shape, 2.5, np.float32) for a in BASE]  # in the normal range
    late_reply = client_reply(late, late_weights, key=sign(0))
    strategy.aggregate_train(
        1, [client_reply(m, ONES, key=sign(partition_of(m))) for m in round1 if m is not late]
    )
    strategy.sink.take(1)
    round2 = list(strategy.configure_train(2, ArrayRecord(ONES), ConfigRecord(), GRID))
    replies = [
        Message(content=late_reply.content, reply_to=m)
        if partition_of(m) == 0
        else client_reply(m, [a + 1 for a in ONES], key=sign(partition_of(m)))
        for m in round2
    ]
    arrays, _ = strategy.aggregate_train(2, replies)
    assert arrays is not None
    np.testing.assert_allclose(arrays.to_numpy_ndarrays()[0], 2.0)  # 2.5 never counted
    result = strategy.sink.take(2)
    assert result is not None
    return result


def test_a_reply_for_an_earlier_round_is_never_aggregated() -> None:
    result = _late_round(_strategy(), key=False)
    assert result.rejected == {0: ("stale_round",)} and 0 not in result.accepted
    assert len(result.accepted) == 9


def test_a_late_reply_is_dropped_even_when_the_gate_only_flags_it(tmp_path: Path) -> None:
    # The client's genuine signature for round 1: only the round number tells it apart.
    strategy = _strategy('integrity.base_digest="flag"', guard=True, tmp_path=tmp_path)
    result = _late_round(strategy, key=True)
    assert result.rejected == {0: ("stale_round",)} and 0 not in result.flagged
    assert len(result.accepted) == 9


def test_each_client_failure_is_recorded_with_the_clients_own_message() -> None:
    strategy = _strategy("clients_per_round=4")
    sent = list(strategy.configure_train(1, ArrayRecord(BASE), ConfigRecord(), GRID))
    crashed, silent = partition_of(sent[0]), partition_of(sent[1])
    replies = [Message(Error(code=2, reason=FLOWER_REASON), reply_to=sent[0])]
    replies += [client_reply(m, ONES) for m in sent[2:]]
    strategy.aggregate_train(1, replies)
    result = strategy.sink.take(1)
    assert result is not None
    assert result.failures == {
        crashed: "out of memory on this node",
        silent: "no reply within the round timeout (600s)",
    }
    assert result.num_failures == 2 and result.num_replies == 2 and result.skipped is None


def test_a_round_below_the_rules_bound_is_skipped_with_its_reasons() -> None:
    strategy = _strategy("defense.aggregator=krum", "defense.params.num_byzantine=2")
    _, result = play_round(strategy, 1, BASE, lambda p: ONES, replying=lambda p: p >= 4)
    assert result.skipped is not None and "n=6" in result.skipped and "n >= 7" in result.skipped
    assert result.skipped.endswith("(6 accepted; 4 failed, 0 rejected)")
    assert sorted(result.failures) == [0, 1, 2, 3]


def _skipped(server_round: int, skipped: str | None) -> RoundResult:
    return RoundResult(server_round=server_round, started=0.0, sampled=(0,), skipped=skipped)


def test_the_run_stops_after_max_failed_rounds_consecutive_skipped_rounds() -> None:
    failed = FailedRounds(limit=3)
    for server_round, skipped in enumerate(["x", "y", None, "a", "b"], start=1):
        failed.observe(_skipped(server_round, skipped))  # a good round resets the count
    with pytest.raises(RoundsFailedError) as caught:
        failed.observe(_skipped(6, "no update was accepted"))
    assert str(caught.value) == (
        "3 consecutive rounds failed (simulation.max_failed_rounds = 3); "
        "round 6: no update was accepted"
    )


def test_every_client_failing_ends_the_run_after_the_limit() -> None:
    strategy = _strategy("clients_per_round=3", "simulation.max_failed_rounds=2")
    failed = FailedRounds(strategy.scenario.simulation.max_failed_rounds)
    _, first = play_round(strategy, 1, BASE, lambda p: ONES, replying=lambda p: False)
    failed.observe(first)
    _, second = play_round(strategy, 2, BASE, lambda p: ONES, replying=lambda p: False)
    with pytest.raises(RoundsFailedError, match="^2 consecutive rounds failed"):
        failed.observe(second)


def test_train_messages_expire_with_the_round() -> None:
    strategy = _strategy("simulation.round_timeout=7.5")
    sent = strategy.configure_train(1, ArrayRecord(BASE), ConfigRecord(), GRID)
    assert {m.metadata.ttl for m in sent} == {7.5}

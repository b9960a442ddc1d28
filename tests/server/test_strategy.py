"""The Flower strategy's aggregation pipeline, without Ray: shuffle, chain, and the skip policy."""

from __future__ import annotations

import numpy as np
import pytest

from scenarios.loader import load_scenario
from server.adversary import Adversary
from server.replies import ClientReply
from server.strategy import FedshieldStrategy, RoundReport
from strategies import build_chain

BASE = [np.zeros((2, 2), np.float32), np.zeros(3, np.float32)]


def _strategy(*overrides: str) -> FedshieldStrategy:
    scenario = load_scenario("quickstart", list(overrides))
    defense = scenario.defense
    chain = build_chain(defense.aggregator, defense.params)
    return FedshieldStrategy(
        scenario=scenario,
        nodes={p: 1000 + p for p in range(scenario.data.num_clients)},
        num_params=7,
        chain=chain,
        adversary=Adversary(scenario, malicious=frozenset(), aggregate=chain),
        guard=None,
    )


def _reply(partition_id: int, value: float, num_examples: int = 10) -> ClientReply:
    arrays = [np.full(a.shape, value, np.float32) for a in BASE]
    return ClientReply(partition_id, 1000 + partition_id, arrays, num_examples, 0.1, 5, 0.2)


def _aggregate(
    strategy: FedshieldStrategy, replies: list[ClientReply]
) -> tuple[list[np.ndarray], RoundReport]:
    strategy._global = [a.copy() for a in BASE]
    report = RoundReport(server_round=1, started=0.0)
    return strategy._aggregate(1, replies, report, None), report


def test_weighted_fedavg_of_the_deltas_is_added_to_the_global_model() -> None:
    new, report = _aggregate(_strategy(), [_reply(0, 1.0, 10), _reply(1, 4.0, 30)])
    assert report.skipped is None
    np.testing.assert_allclose(new[0], np.full((2, 2), 3.25))  # (1*10 + 4*30) / 40
    np.testing.assert_allclose(new[1], np.full(3, 3.25))


def test_too_few_updates_for_the_bound_skips_the_round_and_keeps_the_model() -> None:
    strategy = _strategy("defense.aggregator=krum", "defense.params.num_byzantine=2")
    new, report = _aggregate(strategy, [_reply(p, float(p)) for p in range(6)])  # krum f=2 needs 7
    assert report.skipped is not None
    assert "n=6" in report.skipped and "n >= 7" in report.skipped
    for kept, base in zip(new, BASE, strict=True):
        np.testing.assert_array_equal(kept, base)


def test_no_accepted_update_skips_the_round() -> None:
    new, report = _aggregate(_strategy(), [])
    assert report.skipped == "no update was accepted"
    assert new[0] is not None and np.all(new[0] == 0)


def test_krum_picks_the_honest_cluster_whatever_the_reply_order() -> None:
    strategy = _strategy("defense.aggregator=krum", "defense.params.num_byzantine=1")
    replies = [_reply(p, 1.0 + 0.01 * p) for p in range(6)] + [_reply(6, 100.0)]
    first, _ = _aggregate(strategy, replies)
    second, _ = _aggregate(strategy, list(reversed(replies)))
    assert 1.0 <= float(first[0][0, 0]) <= 1.06
    np.testing.assert_array_equal(first[0], second[0])


def test_sampling_is_seeded_by_round() -> None:
    strategy = _strategy("clients_per_round=4")
    assert strategy._sample(1) == strategy._sample(1)
    assert len(strategy._sample(1)) == 4
    assert any(strategy._sample(1) != strategy._sample(r) for r in range(2, 6))


# Median and trimmed mean are exact here; smoothed Weiszfeld approaches an optimum that sits on
# a data point only sublinearly, so after its 100 iterations it is still 0.06 away (of 1e6).
@pytest.mark.parametrize(
    ("aggregator", "tolerance"),
    [("median", 1e-6), ("trimmed_mean", 1e-6), ("geometric_median", 0.1)],
)
def test_robust_rules_ignore_one_huge_update(aggregator: str, tolerance: float) -> None:
    overrides = [f"defense.aggregator={aggregator}"]
    if aggregator == "trimmed_mean":
        overrides.append("defense.params.num_trimmed=1")
    replies = [_reply(p, 1.0) for p in range(4)] + [_reply(4, 1e6)]
    new, _ = _aggregate(_strategy(*overrides), replies)
    assert float(np.max(np.abs(new[0] - 1.0))) < tolerance

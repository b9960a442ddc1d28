"""Pseudonymous stable client ids: what a per-client rule (FoolsGold) gets instead of identities,
and the omniscient adversary's view of such a rule."""

from __future__ import annotations

import numpy as np

import strategies
from scenarios.loader import load_scenario
from server.pseudonyms import pseudonyms
from server.round import ChainView
from tests.server._round import make_strategy, play_round


def test_pseudonyms_are_a_seeded_permutation_stable_for_the_run() -> None:
    ids = pseudonyms(42, 10)
    assert sorted(ids.tolist()) == list(range(10))
    np.testing.assert_array_equal(ids, pseudonyms(42, 10))  # same seed, same mapping: replay
    # A different seed relabels the clients: the rule cannot carry identities across runs.
    assert not np.array_equal(ids, pseudonyms(43, 10))
    assert ids.dtype == np.int64


def test_placed_view_of_foolsgold_is_what_the_server_computes() -> None:
    # The adversary (who knows the deployed rule and its state) places its call among the
    # round's replies; the view then passes the same pseudonyms, in the server's shuffled
    # order, as the server's own update does.
    chain = strategies.get_aggregator("foolsgold")
    rng = np.random.default_rng(5)
    reply_ids = pseudonyms(7, 6)[[0, 2, 3, 4]]  # the partitions that replied, in reply order
    state = chain.init(3)
    history = rng.normal(size=(4, 3))
    _, state = chain.update(
        history, np.ones(4, dtype=np.int64), state, rng=rng, client_ids=reply_ids
    )
    order = np.random.default_rng(9).permutation(4)
    view = ChainView(
        chain, state, np.random.default_rng(0), shuffle=lambda n: order, client_ids=reply_ids
    ).placed(range(4))
    x = rng.normal(size=(4, 3))
    counts = np.ones(4, dtype=np.int64)
    server, _ = chain.update(
        x[order], counts, state, rng=np.random.default_rng(0), client_ids=reply_ids[order]
    )
    np.testing.assert_array_equal(view(x, counts), server)


def test_strategy_keys_foolsgold_history_by_each_partitions_pseudonym() -> None:
    # Two rounds through the real strategy (messages, replies, seeded shuffle): the history the
    # rule keeps under pseudonym[p] is exactly the sum of partition p's deltas, so rows and ids
    # stay aligned through the shuffle, and the rule never sees a partition id.
    scenario = load_scenario("quickstart", ['defense.aggregator="foolsgold"'])
    chain = strategies.get_aggregator("foolsgold")
    strategy = make_strategy(scenario, chain, num_params=16)
    base = [np.zeros((3, 4), np.float32), np.zeros(4, np.float32)]
    sent: dict[int, np.ndarray] = {}
    for server_round in (1, 2):
        deltas = {
            p: np.random.default_rng(100 * server_round + p).normal(size=16).astype(np.float32)
            for p in range(10)
        }
        flat = np.concatenate([w.ravel() for w in base])

        def weights(p: int, flat: np.ndarray = flat, deltas: dict = deltas) -> list[np.ndarray]:
            new = flat + deltas[p]
            return [new[:12].reshape(3, 4), new[12:]]

        base, _ = play_round(strategy, server_round, base, weights)
        for p, d in deltas.items():
            sent[p] = sent.get(p, 0) + d.astype(np.float64)
    (history,) = strategy.chain_state
    ids = pseudonyms(scenario.seed, 10)
    np.testing.assert_array_equal(history.ids, np.arange(10))
    for p in range(10):
        np.testing.assert_allclose(history.sums[ids[p]], sent[p], rtol=1e-6, atol=1e-6)

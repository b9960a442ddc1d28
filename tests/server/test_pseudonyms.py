"""Pseudonymous stable client ids: what a per-client rule (FoolsGold) gets instead of identities,
and the omniscient adversary's view of such a rule."""

from __future__ import annotations

import numpy as np

import strategies
from server.pseudonyms import pseudonyms
from server.round import ChainView


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

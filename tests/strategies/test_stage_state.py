"""State across rounds: checkpoint and resume, and the adversary's read-only view of a chain."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from aggregation_cases import ALL_CASES, CASE_IDS, Case, counts, honest_updates
from numpy.typing import NDArray

import strategies
from strategies import ChainState, Rule, as_aggregator

N, D = 11, 7
ROUNDS, SAVED_AFTER = 5, 3


def round_inputs(round_: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    # Rounds drift, so a rule that keeps a centre sees it matter.
    return honest_updates(N, D, seed=round_) + 0.1 * round_, counts(N, seed=round_)


def run(rule: Rule, state: ChainState, rounds: range) -> tuple[list[Any], ChainState]:
    outs = []
    for round_ in rounds:
        updates, num_examples = round_inputs(round_)
        out, state = rule.update(
            updates, num_examples, state, rng=np.random.default_rng([7, round_])
        )
        outs.append(out)
    return outs, state


@pytest.mark.parametrize("case", ALL_CASES, ids=CASE_IDS)
def test_resuming_from_a_saved_state_equals_running_straight_through(case: Case) -> None:
    straight, _ = run(case.build(), case.build().init(D), range(ROUNDS))
    first, state = run(case.build(), case.build().init(D), range(SAVED_AFTER))
    saved = pickle.dumps(state)  # numpy arrays and ints only: any checkpoint format holds it
    resumed, _ = run(case.build(), pickle.loads(saved), range(SAVED_AFTER, ROUNDS))
    for expected, got in zip(straight, first + resumed, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_the_saved_state_matters_for_centred_clipping() -> None:
    # The test above is not vacuous: restarting from init instead of the saved centre differs.
    rule = strategies.get_aggregator("centered_clipping", radius=0.1)
    straight, _ = run(rule, rule.init(D), range(ROUNDS))
    restarted, _ = run(rule, rule.init(D), range(SAVED_AFTER, ROUNDS))
    assert np.linalg.norm(straight[SAVED_AFTER] - restarted[0]) > 0.5 * np.linalg.norm(restarted[0])


def leaves(state: ChainState) -> list[Any]:
    return [leaf for stage_state in state for leaf in stage_state]


def check_view(rule: Rule, state: ChainState, seed: int) -> NDArray[np.floating[Any]]:
    """The view's output equals ``update`` with the same state and a same-seeded generator,
    and calling it changes neither the state nor the caller's generator."""
    updates, num_examples = round_inputs(ROUNDS)
    generator = np.random.default_rng(seed)
    before = generator.bit_generator.state
    copies = [np.array(leaf, copy=True) for leaf in leaves(state)]
    view = as_aggregator(rule, state, rng=generator)
    predicted = [view(updates, num_examples) for _ in range(2)]
    actual, _ = rule.update(updates, num_examples, state, rng=np.random.default_rng(seed))
    for output in predicted:
        np.testing.assert_array_equal(output, actual)
    assert generator.bit_generator.state == before
    for leaf, copy in zip(leaves(state), copies, strict=True):
        np.testing.assert_array_equal(leaf, copy)
    return actual


def test_view_of_centred_clipping_at_round_3_is_what_the_server_computes() -> None:
    rule = strategies.get_aggregator("centered_clipping", radius=0.1)
    _, state = run(rule, rule.init(D), range(2))  # rounds 1 and 2 deployed; round 3 next
    actual = check_view(rule, state, seed=3)
    # A fresh one-round copy (what the adversary used to run) starts from a zero centre and
    # predicts something else: off by more than half its own size (measured: 1.01 times it).
    fresh = rule(*round_inputs(ROUNDS))
    assert np.linalg.norm(actual - fresh) > 0.5 * np.linalg.norm(fresh)


def test_view_of_bucketing_uses_the_rounds_generator() -> None:
    rule = strategies.build_chain("median", {}, [("bucketing", {"bucket_size": 3})])
    actual = check_view(rule, rule.init(D), seed=11)
    # The generator matters: another one buckets differently.
    other = rule.update(*round_inputs(ROUNDS), rule.init(D), rng=np.random.default_rng(12))[0]
    assert not np.array_equal(actual, other)


def test_view_is_a_snapshot_of_the_generator() -> None:
    # The server goes on drawing from its generator after the adversary got the view: the
    # view keeps answering for the generator as it was.
    rule = strategies.build_chain("median", {}, [("bucketing", {"bucket_size": 3})])
    updates, num_examples = round_inputs(ROUNDS)
    generator = np.random.default_rng(11)
    view = as_aggregator(rule, rule.init(D), rng=generator)
    expected, _ = rule.update(updates, num_examples, rule.init(D), rng=generator)
    np.testing.assert_array_equal(view(updates, num_examples), expected)

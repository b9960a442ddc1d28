"""Contract tests over the whole registry and a few chains: shape, dtype, purity, invariances."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from aggregation_cases import ALL_CASES, CASE_IDS, RULE_CASES, Case, counts, honest_updates
from numpy.typing import NDArray

import strategies
from common.errors import AggregationError
from strategies import Chain

N, D = 11, 7
cases = pytest.mark.parametrize("case", ALL_CASES, ids=CASE_IDS)


def test_cases_cover_both_registries() -> None:
    used_rules = {c.name for c in RULE_CASES}
    used_pre = {name for c in ALL_CASES for name, _ in c.pre}
    assert used_rules == set(strategies.AGGREGATORS)
    assert used_pre == set(strategies.PRE_AGGREGATORS)


@cases
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_dtype_and_input_untouched(case: Case, dtype: type[np.floating[Any]]) -> None:
    updates = honest_updates(N, D).astype(dtype)
    num_examples = counts(N)
    before = updates.copy(), num_examples.copy()
    updates.setflags(write=False)
    num_examples.setflags(write=False)
    out = case.build()(updates, num_examples)
    assert out.shape == (D,)
    assert out.dtype == dtype
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(updates, before[0])
    np.testing.assert_array_equal(num_examples, before[1])


@cases
def test_deterministic(case: Case) -> None:
    updates, num_examples = honest_updates(N, D), counts(N)
    rule = case.build()
    np.testing.assert_array_equal(rule(updates, num_examples), rule(updates, num_examples))


@cases
def test_permutation_invariant_over_rounds(case: Case) -> None:
    # Attacks append forged rows after the honest ones: no rule may care where a row sits.
    # Three rounds, so a rule's state (centred clipping's centre) is exercised too.
    if not case.deterministic_in_order:
        pytest.skip("bucketing's buckets depend on the client order by design")
    rule = case.build()
    state, permuted_state = rule.init(D), rule.init(D)
    for round_ in range(3):
        updates, num_examples = honest_updates(N, D, seed=3 + round_), counts(N, seed=3 + round_)
        order = np.random.default_rng(7 + round_).permutation(N)
        # Client ids travel with their rows (FoolsGold keys its history by them).
        out, state = rule.update(
            updates, num_examples, state, rng=np.random.default_rng(round_), client_ids=np.arange(N)
        )
        permuted, permuted_state = rule.update(
            updates[order],
            num_examples[order],
            permuted_state,
            rng=np.random.default_rng(round_),
            client_ids=order,
        )
        np.testing.assert_allclose(permuted, out, rtol=1e-12, atol=1e-15)


def test_only_bucketing_may_depend_on_the_order() -> None:
    # The skip above is the documented exception, never a way out for another rule.
    order_dependent = {c.id for c in ALL_CASES if not c.deterministic_in_order}
    bucketed = {c.id for c in ALL_CASES if any(name == "bucketing" for name, _ in c.pre)}
    assert order_dependent == bucketed


@cases
def test_stages_without_uses_rng_ignore_the_generator(case: Case) -> None:
    # The flag is honest: a chain none of whose stages declares uses_rng gives the same
    # answer for any generator (so replaying it needs no seed).
    chain = strategies.build_chain(case.name, case.params, case.pre)
    assert isinstance(chain, Chain)
    if chain.rule.uses_rng or any(stage.uses_rng for stage in chain.pre):
        pytest.skip("draws from rng by design")
    rule, updates, num_examples = case.build(), honest_updates(N, D), counts(N)
    outs = [
        rule.update(updates, num_examples, rule.init(D), rng=np.random.default_rng(seed))[0]
        for seed in (0, 1)
    ]
    np.testing.assert_array_equal(outs[0], outs[1])


# FoolsGold's whole point: clients whose histories coincide are sybils and get weight 0, so n
# identical updates aggregate to zero (test_golden_foolsgold pins it). Only that rule.
SYBIL_DEFENSES = {"foolsgold"}


@cases
def test_identical_updates_aggregate_to_themselves(case: Case) -> None:
    row = honest_updates(1, D, seed=5)[0]
    updates = np.tile(row, (N, 1))
    expected = np.zeros_like(row) if case.name in SYBIL_DEFENSES else row
    if case.params.get("sparsity"):  # LASA at 0.5: of the kernel (row[1:5]) only its largest
        kernel = np.zeros(4)
        kernel[np.argmax(np.abs(row[1:5]))] = row[1 + np.argmax(np.abs(row[1:5]))]
        expected = np.concatenate([row[:1], kernel, row[5:]])
    np.testing.assert_allclose(case.build()(updates, counts(N)), expected, rtol=1e-12, atol=1e-15)


def float32_error_bound(case: Case, updates: NDArray[np.float64]) -> NDArray[np.float64]:
    """A priori bound, per coordinate, on ``|rule(float32 x) - rule(x)|`` for float32-valued x.

    Every stage's float32 work is one mixture of rows ``y_j = sum_i w_ji x_i`` (a bucket or
    neighbour mean, a weighted or trimmed mean, a Weiszfeld or clipping step), with float64
    weights; a float32 dot product of n terms, plus the rounding of the weights, is within
    ``(n + 1) eps32 sum_i |w_ji x_ic|`` of the exact one (Higham 2002, section 3.1).
    Every stage here mixes with non-negative weights summing to at most 1 (sorting rules and
    Krum copy values exactly and round once), so that term is at most
    ``(n + 1) eps32 max_i |x_ic|``, and a later stage passes an earlier one's error on without
    growing it. Except a rule that needs a reference: FLTrust's weights
    ``TS_j ||g0|| / (||y_j|| sum TS)`` sum to at most ``A = ||g0|| / min_j ||y_j||`` over its
    input rows y. A later stage's weights (distances, norms, cosines) read the rounded rows of
    the earlier one and move, to first order, by as much again: hence the factor 2 per stage.
    """
    chain = strategies.build_chain(case.name, case.params, case.pre)
    assert isinstance(chain, Chain)
    rows, num_examples = updates, counts(len(updates))
    for stage in chain.pre:  # the rule's input rows y, exactly (float64)
        rows, num_examples, _ = stage.update(
            rows, num_examples, stage.init(rows.shape[1]), rng=np.random.default_rng(0)
        )
    gain = 1.0
    if chain.needs_reference():  # MeanAsReference: g0 is the mean of the updates
        gain = max(1.0, np.linalg.norm(updates.mean(axis=0)) / np.linalg.norm(rows, axis=1).min())
    stages = len(chain.pre) + 1
    eps32 = float(np.finfo(np.float32).eps)
    return 2 * stages * (len(updates) + 1) * eps32 * gain * np.abs(updates).max(axis=0)


@cases
def test_float32_matches_float64_answer_within_the_rounding_bound(case: Case) -> None:
    updates32 = honest_updates(N, D, seed=11).astype(np.float32)
    updates = updates32.astype(np.float64)  # the same values, exactly
    num_examples = counts(N, seed=11)
    rule = case.build()
    error = np.abs(rule(updates32, num_examples) - rule(updates, num_examples))
    # A coordinate where the rows cancel (nnm+fltrust: 2e-5 out of rows of 0.05) has a large
    # relative error by nature; the bound is relative to the inputs, not to the answer.
    assert np.all(error <= float32_error_bound(case, updates))


@cases
def test_state_is_a_tuple_of_frozen_stage_states(case: Case) -> None:
    rule = case.build()
    state = rule.init(D)
    _, new_state = rule.update(honest_updates(N, D), counts(N), state, rng=np.random.default_rng(0))
    for chain_state in (state, new_state):
        assert isinstance(chain_state, tuple) and len(chain_state) == len(case.pre) + 1
        for stage_state in chain_state:
            assert isinstance(stage_state, tuple) and hasattr(stage_state, "_fields")  # NamedTuple
            for leaf in stage_state:
                assert isinstance(leaf, int) or (
                    isinstance(leaf, np.ndarray) and not leaf.flags.writeable
                )


@cases
def test_bound_is_enforced(case: Case) -> None:
    rule = case.build()
    needed = rule.min_clients()
    rule(honest_updates(needed, D), counts(needed))  # exactly at the bound works
    if needed == 1:
        return
    with pytest.raises(AggregationError, match=rf"n={needed - 1} .*n >= {needed}"):
        rule(honest_updates(needed - 1, D), counts(needed - 1))


def test_bad_shapes_raise_aggregation_error() -> None:
    rule = strategies.get_aggregator("median")
    with pytest.raises(AggregationError, match="2-D float"):
        rule(np.zeros(3), counts(3))
    with pytest.raises(AggregationError, match="2-D float"):
        rule(np.zeros((3, 2), dtype=np.int64), counts(3))
    with pytest.raises(AggregationError, match=r"num_examples must have shape \(3,\)"):
        rule(np.zeros((3, 2)), counts(4))

"""Contract tests over the whole registry and a few chains: shape, dtype, purity, invariances."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from aggregation_cases import ALL_CASES, CASE_IDS, RULE_CASES, Case, counts, honest_updates

import strategies
from common.errors import AggregationError

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
def test_permutation_invariant(case: Case) -> None:
    if not case.deterministic_in_order:
        pytest.skip("bucketing's buckets depend on the client order by design")
    updates, num_examples = honest_updates(N, D, seed=3), counts(N, seed=3)
    order = np.random.default_rng(7).permutation(N)
    rule = case.build()
    np.testing.assert_allclose(
        rule(updates[order], num_examples[order]),
        rule(updates, num_examples),
        rtol=1e-12,
        atol=1e-15,
    )


@cases
def test_identical_updates_aggregate_to_themselves(case: Case) -> None:
    row = honest_updates(1, D, seed=5)[0]
    updates = np.tile(row, (N, 1))
    np.testing.assert_allclose(case.build()(updates, counts(N)), row, rtol=1e-12, atol=1e-15)


@cases
def test_float32_matches_float64_answer(case: Case) -> None:
    updates32 = honest_updates(N, D, seed=11).astype(np.float32)
    num_examples = counts(N, seed=11)
    rule = case.build()
    exact = rule(updates32.astype(np.float64), num_examples)
    np.testing.assert_allclose(rule(updates32, num_examples), exact, rtol=2e-6, atol=1e-9)


@cases
def test_bound_is_enforced(case: Case) -> None:
    rule = case.build()
    needed = rule.min_clients()
    rule(honest_updates(needed, D), counts(needed))  # exactly at the bound works
    if needed == 1:
        return
    with pytest.raises(AggregationError, match=rf"n={needed - 1} .*n >= {needed}"):
        rule(honest_updates(needed - 1, D), counts(needed - 1))


@cases
def test_stateless_rules_return_no_state(case: Case) -> None:
    rule = case.build()
    state = rule.init(D)
    _, new_state = rule.step(honest_updates(N, D), counts(N), state, rng=np.random.default_rng(0))
    if state is None:
        assert new_state is None
    else:
        assert isinstance(new_state, np.ndarray) and not new_state.flags.writeable


def test_bad_shapes_raise_aggregation_error() -> None:
    rule = strategies.get_aggregator("median")
    with pytest.raises(AggregationError, match="2-D float"):
        rule(np.zeros(3), counts(3))
    with pytest.raises(AggregationError, match="2-D float"):
        rule(np.zeros((3, 2), dtype=np.int64), counts(3))
    with pytest.raises(AggregationError, match=r"num_examples must have shape \(3,\)"):
        rule(np.zeros((3, 2)), counts(4))

"""Hypothesis properties of the robustness maths: f huge Byzantine rows inside each bound."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import strategies

HUGE = 1e12

Vec = NDArray[np.float64]


@st.composite
def attacked(draw: st.DrawFn, *, bound: str) -> tuple[Vec, Vec, int]:
    """(updates, honest rows, f): f rows replaced by huge values, f inside ``bound``."""
    f = draw(st.integers(0, 4))
    low = {"median": 2 * f + 1, "krum": 2 * f + 3, "bulyan": 4 * f + 3}[bound]
    n = draw(st.integers(low, low + 6))
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    updates = rng.normal(size=(n, d))
    byzantine = rng.choice(n, size=f, replace=False)  # never "always last"
    signs = rng.choice([-1.0, 1.0], size=(f, d))
    # identical or spread attackers: colluding rows are the hard case for Krum
    spread = draw(st.booleans())
    updates[byzantine] = HUGE * signs * (rng.uniform(1, 2, size=(f, d)) if spread else 1.0)
    honest = np.delete(updates, byzantine, axis=0)
    updates.setflags(write=False)
    return updates, honest, f


def inside_honest_range(out: Vec, honest: Vec) -> bool:
    return bool(np.all(out >= honest.min(axis=0)) and np.all(out <= honest.max(axis=0)))


@settings(max_examples=60, deadline=None)
@given(attacked(bound="median"))
def test_median_stays_in_honest_range(case: tuple[Vec, Vec, int]) -> None:
    updates, honest, _ = case
    out = strategies.get_aggregator("median")(updates, np.ones(len(updates), dtype=np.int64))
    assert inside_honest_range(out, honest)


@settings(max_examples=60, deadline=None)
@given(attacked(bound="median"))
def test_trimmed_mean_stays_in_honest_range(case: tuple[Vec, Vec, int]) -> None:
    updates, honest, f = case
    rule = strategies.get_aggregator("trimmed_mean", num_trimmed=f)
    assert inside_honest_range(rule(updates, np.ones(len(updates), dtype=np.int64)), honest)


@settings(max_examples=60, deadline=None)
@given(attacked(bound="krum"))
def test_krum_selects_an_honest_row(case: tuple[Vec, Vec, int]) -> None:
    updates, honest, f = case
    out = strategies.get_aggregator("krum", num_byzantine=f)(
        updates, np.ones(len(updates), dtype=np.int64)
    )
    assert any(np.array_equal(out, row) for row in honest)


@settings(max_examples=40, deadline=None)
@given(attacked(bound="bulyan"))
def test_bulyan_stays_in_honest_range(case: tuple[Vec, Vec, int]) -> None:
    updates, honest, f = case
    out = strategies.get_aggregator("bulyan", num_byzantine=f)(
        updates, np.ones(len(updates), dtype=np.int64)
    )
    assert inside_honest_range(out, honest)


NEAR = 1e-5
"""Within 10 nu (the default smoothing) of a data point counts as on it."""


def objective(point: Vec, updates: Vec) -> float:
    return float(np.linalg.norm(point - updates, axis=1).sum())


def unit_vector_sum_norm(point: Vec, updates: Vec) -> float:
    """``||sum_i (v - x_i) / ||v - x_i|| ||`` over the points ``x_i != v``."""
    diff = point - updates
    norms = np.linalg.norm(diff, axis=1, keepdims=True)
    away = norms[:, 0] > NEAR
    return float(np.linalg.norm((diff[away] / norms[away]).sum(axis=0)))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 12), d=st.integers(2, 8), seed=st.integers(0, 2**32 - 1))
def test_geometric_median_is_optimal(n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # two clusters so the mean is far from optimal
    updates = np.vstack([rng.normal(size=(n, d)), rng.normal(loc=20.0, size=(n // 2, d))])
    rule = strategies.get_aggregator("geometric_median", tolerance=0.0, max_iterations=3000)
    out = rule(updates, np.ones(len(updates), dtype=np.int64))
    # Optimality of g(v) = sum_i ||v - x_i||: the unit vectors to the points cancel
    # (gradient 0), or, if v sits on a data point, the others' unit vectors sum to norm <= 1
    # (0 is in the subdifferential).
    on_a_point = np.min(np.linalg.norm(out - updates, axis=1)) <= NEAR
    limit = 1.0 + 1e-3 if on_a_point else 1e-3 * len(updates)
    assert unit_vector_sum_norm(out, updates) <= limit
    # and it beats the mean and every data point on the objective, up to the smoothing
    # error: a smoothed term ||z||^2 / (2 nu) + nu / 2 (||z|| < nu) is within nu / 2 of ||z||
    candidates = [updates.mean(axis=0), *updates]
    best_other = min(objective(point, updates) for point in candidates)
    assert objective(out, updates) <= best_other + len(updates) * 1e-6


@st.composite
def shifted(draw: st.DrawFn) -> tuple[Vec, Vec, int, int, int]:
    """(updates, honest rows, f, b, niters): f rows moved far along one common direction.

    Collinear attackers at ``a_j H u`` (``a_j`` in [1, 2]) project farther from the mean than
    any honest row when ``n > 4f`` (``a_j - sum(a)/n > sum(a)/n``), and when ``n > 2f`` if
    they are identical; DnC's guarantee is about such a common shift.
    """
    f = draw(st.integers(0, 3))
    identical = draw(st.booleans())
    low = 2 * f + 1 if identical else 4 * f + 1
    n = draw(st.integers(max(low, 2), low + 6))
    d = draw(st.integers(1, 12))
    b = draw(st.integers(1, d))
    niters = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    updates = rng.normal(size=(n, d))
    byzantine = rng.choice(n, size=f, replace=False)
    direction = rng.choice([-1.0, 1.0], size=d)
    magnitude = np.ones((f, 1)) if identical else rng.uniform(1, 2, size=(f, 1))
    updates[byzantine] = HUGE * magnitude * direction
    honest = np.delete(updates, byzantine, axis=0)
    updates.setflags(write=False)
    return updates, honest, f, b, niters


@settings(max_examples=80, deadline=None)
@given(shifted())
def test_dnc_removes_a_common_shift(case: tuple[Vec, Vec, int, int, int]) -> None:
    updates, honest, f, b, niters = case
    rule = strategies.get_aggregator("dnc", num_byzantine=f, subsample_dim=b, num_iterations=niters)
    out = rule(updates, np.ones(len(updates), dtype=np.int64))
    np.testing.assert_allclose(out, honest.mean(axis=0), rtol=1e-9, atol=1e-12)


@st.composite
def sign_flipped(draw: st.DrawFn) -> tuple[Vec, Vec, float]:
    """(updates, honest rows, q): honest rows share one sign pattern, magnitudes in [0.6, 1.4]
    so every honest norm is within (0.43, 2.33) times any other; f < n/2 rows are -s times an
    honest row, s in [1, 5). A pattern mixing +, 0 and - (with more + than - or fewer) is only
    told apart from its flip on all coordinates (q = 1): a subset could hold as many + as -, or
    only zeros. A one-sign pattern is, on any subset q."""
    f = draw(st.integers(0, 4))
    n = draw(st.integers(2 * f + 1, 2 * f + 7))
    d = draw(st.integers(2, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        zeros = draw(st.integers(0, d - 1))
        positive = draw(st.integers(0, d - zeros).filter(lambda k: 2 * k != d - zeros))
        signs = [1.0] * positive + [0.0] * zeros + [-1.0] * (d - zeros - positive)
        pattern, fraction = rng.permutation(signs), 1.0
    else:
        pattern = np.full(d, draw(st.sampled_from([-1.0, 1.0])))
        fraction = draw(st.sampled_from([0.1, 0.5, 1.0]))
    updates = rng.uniform(0.6, 1.4, size=(n, d)) * pattern
    byzantine = rng.choice(n, size=f, replace=False)
    updates[byzantine] *= -rng.uniform(1.0, 5.0, size=(f, 1))
    honest = np.delete(updates, byzantine, axis=0)
    updates.setflags(write=False)
    return updates, honest, fraction


@settings(max_examples=80, deadline=None)
@given(sign_flipped())
def test_signguard_rejects_sign_flipped_rows(case: tuple[Vec, Vec, float]) -> None:
    updates, honest, fraction = case
    rule = strategies.get_aggregator("signguard", selection_fraction=fraction)
    out = rule(updates, np.ones(len(updates), dtype=np.int64))
    # The median norm M lies within the honest norms (an honest majority), so every honest
    # row passes the band (0.1 M, 3 M); its sign statistics are shared, and the flipped rows'
    # differ, so S is exactly the honest rows, each clipped to M.
    median = np.median(np.linalg.norm(updates, axis=1))
    honest_norms = np.linalg.norm(honest, axis=1, keepdims=True)
    expected = (honest * np.minimum(1.0, median / honest_norms)).mean(axis=0)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)

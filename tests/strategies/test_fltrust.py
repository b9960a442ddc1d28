"""FLTrust (Cao et al. 2021): hand-computed numbers, the reference plumbing, its properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

import strategies
from common.errors import AggregationError, ConfigError

Vec = NDArray[np.float64]
FLTRUST = strategies.get_aggregator("fltrust")


def ones(n: int) -> NDArray[np.int64]:
    return np.ones(n, dtype=np.int64)


def test_trust_is_relu_cosine_and_updates_take_the_reference_norm() -> None:
    # g0 = (1, 1), ||g0|| = sqrt 2. cos: (1,0) -> 1/sqrt2, (0,2) -> 1/sqrt2, (-1,0) -> < 0 -> 0,
    # (0,0) -> no direction -> 0. Rescaled: sqrt2 (1,0) and sqrt2 (0,1), equal trust:
    # their mean is (sqrt2/2, sqrt2/2).
    x = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.0, 0.0]])
    out = FLTRUST(x, ones(4), reference=np.array([1.0, 1.0]))
    np.testing.assert_allclose(out, [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-15)


def test_unequal_trust_weights() -> None:
    # g0 = (1, 0). x1 = (3, 4): cos 0.6, rescaled (0.6, 0.8). x2 = (1, 0): cos 1, rescaled (1, 0).
    # (0.6 (0.6, 0.8) + 1 (1, 0)) / 1.6 = (1.36, 0.48) / 1.6 = (0.85, 0.3).
    x = np.array([[3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(
        FLTRUST(x, ones(2), reference=np.array([1.0, 0.0])), [0.85, 0.3], rtol=1e-15
    )


def test_no_trusted_update_keeps_the_model() -> None:
    x = np.array([[-1.0, 0.0], [0.0, -1.0]], dtype=np.float32)
    out = FLTRUST(x, ones(2), reference=np.array([1.0, 1.0], dtype=np.float32))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0.0, 0.0])
    np.testing.assert_array_equal(FLTRUST(-x, ones(2), reference=np.zeros(2)), [0.0, 0.0])


def test_magnitude_and_counts_buy_nothing() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 20))
    reference = x.mean(axis=0)
    boosted = x.copy()
    boosted[2] *= 1e6
    counts = ones(6)
    inflated = counts.copy()
    inflated[2] = 10**9
    expected = FLTRUST(x, counts, reference=reference)
    np.testing.assert_allclose(FLTRUST(boosted, inflated, reference=reference), expected)


def test_reference_is_required_and_checked() -> None:
    x = np.ones((3, 4))
    with pytest.raises(AggregationError, match=r"fltrust: needs reference="):
        FLTRUST(x, ones(3))
    with pytest.raises(AggregationError, match=r"reference must be a \(4,\) float array"):
        FLTRUST(x, ones(3), reference=np.ones(5))
    with pytest.raises(AggregationError, match="NaN or Inf"):
        FLTRUST(x, ones(3), reference=np.array([1.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ConfigError, match="defense.params"):
        strategies.get_aggregator("fltrust", root_size=100)  # the root set is the server's


def test_a_chain_passes_the_reference_through_its_pre_aggregators() -> None:
    chain = strategies.build_chain("fltrust", {}, pre=[("clip", {"max_norm": 1.0})])
    assert chain.needs_reference()
    x = np.array([[3.0, 4.0], [1.0, 0.0]])
    # clipping to norm 1 keeps the directions, and FLTrust only reads directions
    np.testing.assert_allclose(chain(x, ones(2), reference=np.array([1.0, 0.0])), [0.85, 0.3])
    assert not strategies.get_aggregator("median").needs_reference()


@st.composite
def flipped(draw: st.DrawFn) -> tuple[Vec, Vec, Vec]:
    """(all updates, honest updates, reference): honest rows inside a cone around the
    reference, attackers sending scaled negatives of honest rows (sign flipping)."""
    h = draw(st.integers(1, 8))
    f = draw(st.integers(0, 12))  # any number of attackers, even a majority
    d = draw(st.integers(2, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    reference = rng.normal(size=d)
    honest = reference + 0.3 * np.linalg.norm(reference) * rng.normal(size=(h, d)) / np.sqrt(d)
    honest = honest[honest @ reference > 0]  # "honest" here means positively aligned
    if len(honest) == 0:
        honest = reference[None, :].copy()
    attackers = -rng.uniform(1, 1e6, size=(f, 1)) * honest[rng.integers(0, len(honest), f)]
    updates = np.concatenate([honest, attackers])[rng.permutation(len(honest) + f)]
    updates.setflags(write=False)
    return updates, honest, reference


@settings(max_examples=80, deadline=None)
@given(flipped())
def test_flipped_updates_get_no_weight_and_the_norm_is_bounded(case: tuple[Vec, Vec, Vec]) -> None:
    updates, honest, reference = case
    out = FLTRUST(updates, ones(len(updates)), reference=reference)
    np.testing.assert_allclose(
        out, FLTRUST(honest, ones(len(honest)), reference=reference), rtol=1e-9, atol=1e-12
    )
    # a convex combination of vectors of norm ||g0||
    assert np.linalg.norm(out) <= np.linalg.norm(reference) * (1 + 1e-12)

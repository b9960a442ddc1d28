"""Golden numbers for the noised rules, FLAME (Nguyen et al. 2022) and weak DP (Sun et al. 2019),
computed by hand from the papers' formulas; and their noise's scale."""

from __future__ import annotations

import numpy as np
import pytest
from golden_helpers import ones

import strategies
from strategies.flame import cosine_distances


def run(name: str, updates: np.ndarray, num_examples: np.ndarray, seed: int, **params: object):
    rule = strategies.get_aggregator(name, **params)
    return rule.update(
        updates, num_examples, rule.init(updates.shape[1]), rng=np.random.default_rng(seed)
    )[0]


def test_flame_admits_the_majority_cluster_and_clips_to_the_median_norm() -> None:
    # Directions: three near (1, 0), one along (0, 1) (cosine distance 1 from them) and one
    # along (-1, 0) (distance 2). Norms 1, 2, sqrt(36.25), 5, 4: S_t = 4 (median of all five).
    # C = {0, 1, 2}: (6, 0.5) is scaled by 4 / sqrt(36.25) = 0.664364...
    x = np.array([[1.0, 0.0], [2.0, 0.0], [6.0, 0.5], [0.0, 5.0], [-4.0, 0.0]])
    scale = 4 / np.sqrt(36.25)
    expected = np.array([(1 + 2 + 6 * scale) / 3, 0.5 * scale / 3])
    np.testing.assert_allclose(run("flame", x, ones(5), 0, noise_level=0.0), expected, rtol=1e-12)


def test_flame_drops_a_colluding_minority_pointing_elsewhere() -> None:
    # 6 honest updates within a few degrees of (1, 1, 1, 1); 4 sybils send the same boosted
    # update along (-1, 1, -1, 1), orthogonal to them. HDBSCAN with min_cluster_size 6 keeps
    # exactly the honest six. S_t, the median of all ten norms, is the mean of the 5th and 6th
    # smallest, both honest: the largest honest update is clipped to it.
    rng = np.random.default_rng(3)
    honest = np.ones((6, 4)) + rng.normal(0.0, 0.05, size=(6, 4))
    sybils = np.tile([-10.0, 10.0, -10.0, 10.0], (4, 1))
    x = np.vstack([honest, sybils])
    norms = np.linalg.norm(x, axis=1)
    median = np.sort(norms)[4:6].mean()
    clipped = honest * np.minimum(1.0, median / norms[:6])[:, None]
    assert np.count_nonzero(norms[:6] > median) == 1  # only the largest honest norm exceeds S_t
    out = run("flame", x, ones(10), 0, noise_level=0.0)
    np.testing.assert_allclose(out, clipped.mean(axis=0), rtol=1e-12)


def test_flame_noise_is_gaussian_with_std_lambda_times_the_median_norm() -> None:
    d, noise_level = 20_000, 0.1
    rng = np.random.default_rng(1)
    x = np.ones((3, d)) * np.array([[1.0], [2.0], [3.0]]) / np.sqrt(d)  # norms 1, 2, 3
    x = x + rng.normal(0.0, 1e-4, size=x.shape)
    noise = run("flame", x, ones(3), 5, noise_level=noise_level) - run(
        "flame", x, ones(3), 5, noise_level=0.0
    )
    median = np.median(np.linalg.norm(x, axis=1))  # S_t = 2
    # The std of 20,000 normal draws is within 2 % of sigma with overwhelming probability.
    assert noise.std() == pytest.approx(noise_level * median, rel=0.02)
    assert abs(noise.mean()) < 4 * noise_level * median / np.sqrt(d)


def test_flame_cosine_distances_treat_a_zero_update_as_orthogonal() -> None:
    x = np.array([[1.0, 0.0], [0.0, 0.0], [-2.0, 0.0]])
    np.testing.assert_allclose(
        cosine_distances(x), [[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]], atol=1e-15
    )


def test_flame_keeps_a_single_update() -> None:
    x = np.array([[3.0, 4.0]])
    np.testing.assert_allclose(run("flame", x, ones(1), 0, noise_level=0.0), [3.0, 4.0])


def test_weak_dp_clips_then_averages() -> None:
    x = np.array([[3.0, 4.0], [0.5, 0.0]])  # (3, 4) clipped to (0.6, 0.8) with M = 1
    params = {"max_norm": 1.0, "noise_std": 0.0}
    np.testing.assert_allclose(
        run("weak_dp", x, ones(2), 0, weighted=False, **params), [0.55, 0.4], rtol=1e-12
    )
    counts = np.array([1, 3], dtype=np.int64)  # weights 1/4, 3/4
    np.testing.assert_allclose(run("weak_dp", x, counts, 0, **params), [0.525, 0.2], rtol=1e-12)


def test_weak_dp_noise_has_the_configured_std_whatever_n() -> None:
    # Sun et al. add the noise to the aggregate once: its std does not shrink with n.
    d = 20_000
    for n in (2, 10):
        x = np.zeros((n, d))
        noise = run("weak_dp", x, ones(n), n, max_norm=1.0, noise_std=0.5)
        assert noise.std() == pytest.approx(0.5, rel=0.02)

"""PSNR and SSIM pinned to their definitions (Wang et al. 2004; scikit-image's defaults)."""

from __future__ import annotations

import numpy as np
import pytest

from server.inversion.quality import best_match, psnr, random_baseline, ssim


def test_psnr_of_a_known_error() -> None:
    truth = np.zeros((8, 8))
    assert psnr(truth + 0.1, truth) == pytest.approx(20.0)  # MSE 0.01, L = 1
    assert psnr(truth + 0.2, truth, data_range=2.0) == pytest.approx(20.0)
    assert psnr(truth, truth) == float("inf")


def test_ssim_on_one_window_is_wang_et_al_eq_13() -> None:
    # A 7x7 image is exactly one 7x7 window: SSIM is the formula over all 49 pixels, with
    # sample (n - 1) variances as scikit-image uses.
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (7, 7)), rng.uniform(0, 1, (7, 7))
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(ddof=1), y.var(ddof=1)
    cxy = np.cov(x.ravel(), y.ravel())[0, 1]
    c1, c2 = 0.01**2, 0.03**2
    expected = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert ssim(x, y) == pytest.approx(expected, rel=1e-12)


def test_ssim_averages_the_windows_inside_the_image() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1, (8, 8)), rng.uniform(0, 1, (8, 8))
    windows = [
        ssim(x[i : i + 7, j : j + 7], y[i : i + 7, j : j + 7]) for i in (0, 1) for j in (0, 1)
    ]
    assert ssim(x, y) == pytest.approx(np.mean(windows), rel=1e-12)
    assert ssim(x[..., None], y[..., None]) == pytest.approx(ssim(x, y))  # one channel


def test_ssim_is_one_only_for_identical_images() -> None:
    x = np.random.default_rng(2).uniform(0, 1, (8, 8))
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, 1.0 - x) < 0.0  # inverted contrast: negative structure term
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(x, x[:7])


def test_best_match_finds_the_closest_reference() -> None:
    references = np.stack([np.zeros((8, 8)), np.ones((8, 8)), np.full((8, 8), 0.5)])
    index, score, _ = best_match(np.full((8, 8), 0.45), references)
    assert index == 2
    assert score == pytest.approx(10 * np.log10(1 / 0.0025))


def test_random_baseline_is_low() -> None:
    references = np.random.default_rng(3).uniform(0, 1, (5, 8, 8))
    noise_psnr, noise_ssim = random_baseline(
        references, low=0.0, high=1.0, rng=np.random.default_rng(4)
    )
    assert 5.0 < noise_psnr < 10.0  # uniform vs uniform: MSE 1/6, 7.8 dB, best of 5 a bit more
    assert abs(noise_ssim) < 0.3

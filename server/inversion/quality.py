"""Reconstruction quality: PSNR and SSIM of an image against the true one, and best matches.

PSNR = 10 log10( L^2 / MSE(x, y) ), L the data range (1 for pixels in [0, 1]).

SSIM (Wang, Bovik, Sheikh, Simoncelli 2004, "Image Quality Assessment: From Error Visibility to
Structural Similarity", eq. 13), computed as scikit-image's ``structural_similarity`` does by
default: a uniform ``win`` x ``win`` window (``win`` = 7, or the image's shorter side when
smaller), sample (co)variances (times NP / (NP - 1), NP = win^2), K1 = 0.01, K2 = 0.03,
C1 = (K1 L)^2, C2 = (K2 L)^2, and the mean of

    SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2)
                 / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))

over the windows that lie wholly inside the image (scikit-image filters the whole image, then
crops ``(win - 1) / 2`` pixels from every border: the same windows). Channels are averaged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

Image = NDArray[np.floating[Any]]
"""One image, ``(height, width)`` or ``(height, width, channels)``."""

_K1, _K2, _WINDOW = 0.01, 0.03, 7


def psnr(image: Image, truth: Image, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (infinite for identical images)."""
    mse = float(np.mean((np.asarray(image, np.float64) - np.asarray(truth, np.float64)) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(data_range**2 / mse))


def ssim(image: Image, truth: Image, *, data_range: float = 1.0) -> float:
    """Mean SSIM (module docstring), in [-1, 1]; 1 only for identical images."""
    x, y = (np.asarray(a, np.float64) for a in (image, truth))
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ: {x.shape} and {y.shape}")
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    return float(np.mean([_ssim_2d(x[..., c], y[..., c], data_range) for c in range(x.shape[2])]))


def _ssim_2d(x: NDArray[np.float64], y: NDArray[np.float64], data_range: float) -> float:
    win = min(_WINDOW, *x.shape)
    win -= 1 - win % 2  # odd, as scikit-image requires
    windows = [sliding_window_view(a, (win, win)) for a in (x, y, x * x, y * y, x * y)]
    ux, uy, uxx, uyy, uxy = (w.mean(axis=(-2, -1)) for w in windows)
    cov_norm = win * win / (win * win - 1.0)
    vx, vy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    index = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(index.mean())


def best_match(
    image: Image, references: NDArray[np.floating[Any]], *, data_range: float = 1.0
) -> tuple[int, float, float]:
    """``(index, psnr, ssim)`` of the reference closest to ``image`` in PSNR.

    The server does not know which of a client's examples a DP or multi-step round used, so a
    reconstruction is scored against the client's whole shard: a successful attack matches some
    training image, and a random image's best match is the baseline (:func:`random_baseline`).
    """
    mse = np.mean(
        (np.asarray(references, np.float64) - np.asarray(image, np.float64)) ** 2,
        axis=tuple(range(1, np.ndim(references))),
    )
    index = int(np.argmin(mse))
    truth = references[index]
    return (
        index,
        psnr(image, truth, data_range=data_range),
        ssim(image, truth, data_range=data_range),
    )


def random_baseline(
    references: NDArray[np.floating[Any]],
    *,
    low: float,
    high: float,
    rng: np.random.Generator,
    draws: int = 16,
) -> tuple[float, float]:
    """Mean best-match ``(psnr, ssim)`` of uniform random images: what "failed" looks like."""
    scores = [
        best_match(rng.uniform(low, high, references.shape[1:]), references, data_range=high - low)
        for _ in range(draws)
    ]
    return float(np.mean([s[1] for s in scores])), float(np.mean([s[2] for s in scores]))

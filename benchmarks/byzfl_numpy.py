"""ByzFL's aggregators and pre-aggregators, numpy path, reimplemented as the peer baseline.

ByzFL (github.com/LPD-EPFL/byzfl, commit 69bd1ac0116fa7ff9eaf6d8ae049650d8e5f7e55, MIT) imports
torch at module level, so it stays out of the dependency set; these are its ``__call__`` bodies
with ``tools = np`` and ``vectors`` a stacked ``np.ndarray`` (what ``check_vectors_type``
passes through unchanged), one operation for one operation, float32 in, float32 out:

* ``byzfl/aggregators/aggregators.py``: ``Average``, ``Median``, ``TrMean``,
  ``GeometricMedian``, ``Krum``, ``MultiKrum``, ``CenteredClipping``;
* ``byzfl/aggregators/preaggregators.py``: ``NNM``, ``Bucketing``, ``Clipping``;
* ``byzfl/utils/misc.py``: ``distance_tool`` is ``scipy.spatial.distance`` for numpy input,
  ``random_tool`` is ``np.random``.

Definitions where ByzFL differs from fedshield (the benchmark marks them "other definition"):
Krum and Multi-Krum score with the *mean* squared distance to the n-f-1 nearest others (Blanchard
et al.: the sum over n-f-2); Multi-Krum averages n-f; the geometric median starts at zero with
nu = 0.1 and runs exactly T = 3 steps; bucketing draws its permutation from ``np.random``.
``Clipping`` scales the caller's array in place (the benchmark hands it a fresh copy, untimed).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.spatial import distance

Array = np.ndarray[Any, Any]


def average(vectors: Array) -> Array:
    """``Average.__call__``."""
    return np.mean(vectors, axis=0)


def median(vectors: Array) -> Array:
    """``Median.__call__``."""
    return np.median(vectors, axis=0)


def trmean(vectors: Array, f: int) -> Array:
    """``TrMean(f).__call__``."""
    if f == 0:
        return average(vectors)
    selected_vectors = np.sort(vectors, axis=0)[f:-f]
    return np.mean(selected_vectors, axis=0)


def geometric_median(vectors: Array, nu: float = 0.1, T: int = 3) -> Array:  # noqa: N803
    """``GeometricMedian(nu, T).__call__``: smoothed Weiszfeld from zero, T steps."""
    z = np.zeros_like(vectors[0])
    filtered_vectors = vectors[~np.any(np.isinf(vectors), axis=1)]
    alpha = 1 / len(vectors)
    for _ in range(T):
        betas = np.linalg.norm(filtered_vectors - z, axis=1)
        betas[betas < nu] = nu
        betas = (alpha / betas)[:, None]
        z = np.sum((filtered_vectors * betas), axis=0) / np.sum(betas)
    return z


def krum(vectors: Array, f: int) -> Array:
    """``Krum(f).__call__``."""
    n = len(vectors)
    dist = distance.cdist(vectors, vectors) ** 2
    dist = np.sort(dist, axis=1)[:, 1 : n - f]
    dist = np.mean(dist, axis=1)
    index = np.argmin(dist)
    return vectors[index]


def multi_krum(vectors: Array, f: int) -> Array:
    """``MultiKrum(f).__call__``."""
    n = len(vectors)
    dist = distance.cdist(vectors, vectors) ** 2
    dist = np.sort(dist, axis=1)[:, 1 : n - f]
    dist = np.mean(dist, axis=1)
    k = n - f
    indices = np.argpartition(dist, k - 1)[:k]
    return np.mean(vectors[indices], axis=0)


def centered_clipping(vectors: Array, L: int = 1, tau: float = 100.0) -> Array:  # noqa: N803
    """``CenteredClipping(m=None, L, tau).__call__`` on its first call (m starts at zero)."""
    v = np.zeros_like(vectors[0])
    for _ in range(L):
        differences = vectors - v
        clip_factor = tau / np.linalg.norm(differences, axis=1)
        clip_factor = np.minimum(np.ones_like(clip_factor), clip_factor)
        differences = np.multiply(differences, clip_factor.reshape(-1, 1))
        v = np.add(v, np.mean(differences, axis=0))
    return v


def nnm(vectors: Array, f: int) -> Array:
    """``NNM(f).__call__``: gathers an ``(n, n-f, d)`` array before the mean."""
    dist = distance.cdist(vectors, vectors)
    k = len(vectors) - f
    indices = np.argpartition(dist, k - 1, axis=1)[:, :k]
    return np.mean(vectors[indices], axis=1)


def nnm_bytes(n: int, d: int, f: int, itemsize: int) -> int:
    """What :func:`nnm`'s gather allocates (the benchmark skips it above its memory cap)."""
    return n * (n - f) * d * itemsize


def bucketing(vectors: Array, s: int) -> Array:
    """``Bucketing(s).__call__``: permute (a full copy), reshape, mean; the last bucket apart."""
    vectors = np.random.permutation(vectors)
    nb_buckets = int(math.floor(len(vectors) / s))
    buckets = vectors[: nb_buckets * s]
    buckets = np.reshape(buckets, (nb_buckets, s, len(vectors[0])))
    output = np.mean(buckets, axis=1)
    if nb_buckets != len(vectors) / s:
        last_mean = np.mean(vectors[nb_buckets * s :], axis=0)
        last_mean = last_mean.reshape(1, -1)
        output = np.concatenate((output, last_mean), axis=0)
    return output


def clipping(vectors: Array, c: float = 2.0) -> Array:
    """``Clipping(c).__call__``: each row scaled in place by ``_clip_vector``."""
    for i in range(len(vectors)):
        vector = vectors[i]
        vector_norm = np.linalg.norm(vector)
        if vector_norm > c:
            vector = np.multiply(vector, c / vector_norm)
        vectors[i] = vector
    return vectors

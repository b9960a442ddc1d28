"""Norm and cosine of update deltas ``d_i = w_i - w_global`` without materialising them.

A model is a list of arrays; a delta is never stacked or concatenated. Each array pair is
walked in chunks of ``_CHUNK`` elements through one reusable buffer, so memory traffic is one
read of the reply and one of the global model, and the buffer stays in the L2 cache. The gate
also hashes each reply chunk just before subtracting it (:func:`digest_and_delta_sq_norm`):
the digest and the norm then cost one trip through memory instead of two, which is what keeps
the gate near raw SHA-256 speed.

Precision: the subtraction and each chunk's dot product run in the inputs' float type (float32
for Keras weights: BLAS ``sdot``, relative error about 1e-6 on a chunk, far below any norm
threshold); chunks are summed in float64 with ``math.fsum``. Float64 arithmetic would be exact
to 1e-12 but costs twice the memory traffic, and the gate must stay near raw hashing speed.
A NaN/Inf input always makes the sum non-finite (squares are non-negative, nothing cancels);
a non-finite sum can also be a float32 overflow (|delta| > 1.8e19), which the caller tells
apart with :func:`all_finite`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from common.crypto.digest import array_header, canonical_array, digest_start, raw_bytes

Arrays = Sequence[NDArray[np.generic]]

_CHUNK = 1 << 15  # 128 KiB of float32: fits in L2 beside the two input chunks


def _delta_chunks(
    arrays: Arrays, global_arrays: Arrays, hasher: hashlib._Hash | None = None
) -> Iterator[tuple[int, NDArray[Any]]]:
    """Yield ``(flat_offset, w - g)`` chunk by chunk; the yielded buffer is reused, read it now.

    The chunk dtype is the inputs' float type (float32 stays float32; integers become float64).
    With ``hasher``, the canonical serialisation of ``arrays`` (see ``digest.py``, after its
    array count) is fed to it along the way.
    """
    buffers: dict[np.dtype[Any], NDArray[Any]] = {}
    offset = 0
    for raw_array, reference in zip(arrays, global_arrays, strict=True):
        array = canonical_array(raw_array)
        if hasher is not None:
            hasher.update(array_header(array))
        flat, flat_reference = array.reshape(-1), reference.reshape(-1)
        dtype = np.promote_types(np.result_type(flat, flat_reference), np.float32)
        buffer = buffers.setdefault(dtype, np.empty(_CHUNK, dtype=dtype))
        for start in range(0, flat.size, _CHUNK):
            stop = min(start + _CHUNK, flat.size)
            out = buffer[: stop - start]
            piece = flat[start:stop]
            if hasher is not None:
                hasher.update(raw_bytes(piece))
            with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf are reported, not warned
                np.subtract(piece, flat_reference[start:stop], out=out, dtype=dtype)
            yield offset + start, out
        offset += flat.size


def digest_and_delta_sq_norm(arrays: Arrays, global_arrays: Arrays) -> tuple[str, float]:
    """``(digest_arrays(arrays), sum_j (w_j - g_j)^2)`` in one pass over ``arrays``.

    The inputs must have matching shapes; they are only read. The sum is NaN/Inf when an input
    holds a NaN/Inf.
    """
    hasher = digest_start(len(arrays))
    sq_norm = math.fsum(
        float(np.dot(chunk, chunk)) for _, chunk in _delta_chunks(arrays, global_arrays, hasher)
    )
    return hasher.hexdigest(), sq_norm


def all_finite(arrays: Arrays) -> bool:
    """True when no array holds a NaN or an infinity."""
    return all(bool(np.isfinite(array).all()) for array in arrays)


def leave_one_out_cosines(
    updates: Sequence[Arrays], global_arrays: Arrays, sq_norms: Sequence[float]
) -> list[float]:
    """``cos(d_i, S - d_i)`` for each update, with ``S = sum_k d_k`` the sum of all deltas.

    ``S - d_i`` is the direction the *other* clients agree on; leaving ``d_i`` out stops one
    large update from pulling the reference towards itself. Computed from ``S`` alone::

        <d_i, S - d_i>  = <d_i, S> - ||d_i||^2
        ||S - d_i||^2   = ||S||^2 - 2 <d_i, S> + ||d_i||^2

    so the cost is two passes (build ``S``, then one dot product per update) and one float64
    vector the size of the model. A zero vector has no direction: its cosine is reported as
    1.0 (no evidence against it). ``sq_norms[i]`` must be ``||d_i||^2``.
    """
    total_size = sum(reference.size for reference in global_arrays)
    consensus = np.zeros(total_size, dtype=np.float64)
    for arrays in updates:
        for offset, chunk in _delta_chunks(arrays, global_arrays):
            consensus[offset : offset + chunk.size] += chunk
    consensus_sq = float(np.dot(consensus, consensus))
    cosines = []
    for arrays, own_sq in zip(updates, sq_norms, strict=True):
        with_all = math.fsum(
            float(np.dot(chunk, consensus[offset : offset + chunk.size]))
            for offset, chunk in _delta_chunks(arrays, global_arrays)
        )
        others_sq = max(consensus_sq - 2.0 * with_all + own_sq, 0.0)  # clamp rounding below 0
        denominator = math.sqrt(own_sq * others_sq)
        cosine = (with_all - own_sq) / denominator if denominator > 0 else 1.0
        cosines.append(min(1.0, max(-1.0, cosine)))  # rounding can step just outside [-1, 1]
    return cosines

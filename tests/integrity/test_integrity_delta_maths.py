"""Chunked delta norm and leave-one-out cosine against a direct float64 computation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from common.crypto.digest import digest_arrays
from server.integrity._delta_maths import (
    _CHUNK,
    all_finite,
    digest_and_delta_sq_norm,
    leave_one_out_cosines,
)
from tests.integrity._builders import read_only


def _model(rng: np.random.Generator, sizes: tuple[int, ...]) -> list[NDArray[Any]]:
    return read_only([rng.standard_normal(size).astype(np.float32) for size in sizes])


def _flat_delta(arrays: list[NDArray[Any]], reference: list[NDArray[Any]]) -> NDArray[Any]:
    return np.concatenate(
        [a.astype(np.float64).ravel() - r.ravel() for a, r in zip(arrays, reference, strict=True)]
    )


def _sq_norm(update: list[NDArray[Any]], reference: list[NDArray[Any]]) -> float:
    return digest_and_delta_sq_norm(update, reference)[1]


def test_one_pass_digest_and_norm_across_chunk_boundaries() -> None:
    rng = np.random.default_rng(0)
    sizes = (2 * _CHUNK + 17, 5, _CHUNK)  # crosses, ends inside and ends on a chunk boundary
    reference, update = _model(rng, sizes), _model(rng, sizes)
    digest, sq_norm = digest_and_delta_sq_norm(update, reference)
    assert digest == digest_arrays(update)
    # float32 chunks, float64 sum across chunks: about 1e-6 relative (see the module docstring)
    assert sq_norm == pytest.approx(float(np.sum(_flat_delta(update, reference) ** 2)), rel=1e-5)


def test_digest_of_a_non_contiguous_reply_is_canonical() -> None:
    rng = np.random.default_rng(1)
    reference = _model(rng, (12,))
    fortran = np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32))
    digest, sq_norm = digest_and_delta_sq_norm([fortran], [reference[0].reshape(3, 4)])
    assert digest == digest_arrays([np.ascontiguousarray(fortran)])
    assert sq_norm == pytest.approx(float(np.sum((fortran - reference[0].reshape(3, 4)) ** 2)))


def test_golden_norm() -> None:
    update = read_only([np.array([[3.0, 1.0]], dtype=np.float32), np.array([5.0], np.float32)])
    reference = read_only([np.array([[0.0, 1.0]], dtype=np.float32), np.array([1.0], np.float32)])
    assert _sq_norm(update, reference) == 25.0  # 3^2 + 0^2 + 4^2


def test_non_finite_input_gives_a_non_finite_sum() -> None:
    reference = read_only([np.zeros(10, np.float32)])
    for bad in (np.nan, np.inf, -np.inf):
        update = read_only([np.where(np.arange(10) == 3, bad, 0.0).astype(np.float32)])
        assert not math.isfinite(_sq_norm(update, reference))
    # A finite float32 overflow is also non-finite: the gate then runs all_finite to tell.
    huge = read_only([np.full(10, np.finfo(np.float32).max, np.float32)])
    assert not math.isfinite(_sq_norm(huge, reference))
    assert all_finite(huge) and not all_finite(read_only([np.array([1.0, np.nan])]))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), clients=st.integers(2, 6))
def test_leave_one_out_cosines_match_the_definition(seed: int, clients: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = (7, 3, 11)
    reference = _model(rng, sizes)
    updates = [_model(rng, sizes) for _ in range(clients)]
    deltas = [_flat_delta(u, reference) for u in updates]
    total = np.sum(deltas, axis=0)
    expected = [
        float(d @ (total - d) / (np.linalg.norm(d) * np.linalg.norm(total - d))) for d in deltas
    ]
    got = leave_one_out_cosines(updates, reference, [float(d @ d) for d in deltas])
    assert got == pytest.approx(expected, abs=1e-6)  # float32 deltas (module docstring)


def test_zero_delta_has_cosine_one() -> None:
    reference = read_only([np.ones(4, np.float32)])
    updates = [reference, read_only([np.full(4, 2.0, np.float32)])]
    assert leave_one_out_cosines(updates, reference, [0.0, 4.0]) == [1.0, 1.0]

"""digest_arrays: golden serialisation, layout invariance, sensitivity to every field."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from common.crypto.digest import canonical_array, digest_arrays
from common.errors import IntegrityError


def test_golden_serialisation_of_the_module_docstring() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    b = np.array([7], dtype=np.uint8)
    expected = hashlib.sha256(
        struct.pack("<Q", 2)
        + struct.pack("<Q", 3) + b"<f4" + struct.pack("<QQQ", 2, 2, 2)
        + struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
        + struct.pack("<Q", 3) + b"|u1" + struct.pack("<QQ", 1, 1)
        + b"\x07"
    ).hexdigest()  # fmt: skip
    assert digest_arrays([a, b]) == expected


def test_empty_list_is_the_hash_of_a_zero_count() -> None:
    assert digest_arrays([]) == hashlib.sha256(struct.pack("<Q", 0)).hexdigest()


float_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int32]),
    shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=5),
    elements={"allow_nan": False, "min_value": -1e6, "max_value": 1e6},
)


@settings(max_examples=60, deadline=None)
@given(array=float_arrays)
def test_same_values_in_another_layout_give_the_same_digest(array: NDArray[Any]) -> None:
    reference = digest_arrays([array])
    fortran = np.asfortranarray(array)
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    strided = np.repeat(array, 2, axis=0)[::2]  # a non-contiguous view of equal values
    assert not strided.flags.c_contiguous or array.shape[0] == 1
    for variant in (fortran, big_endian, strided):
        assert digest_arrays([variant]) == reference


@settings(max_examples=60, deadline=None)
@given(array=float_arrays)
def test_dtype_shape_and_split_changes_change_the_digest(array: NDArray[Any]) -> None:
    reference = digest_arrays([array])
    other_dtype = np.float32 if array.dtype == np.float64 else np.float64
    assert digest_arrays([array.astype(other_dtype)]) != reference
    assert digest_arrays([array.reshape(-1)]) != reference  # same bytes, other shape
    assert digest_arrays([array[None]]) != reference  # one more axis
    flat = array.reshape(-1)
    if flat.size >= 2:  # same bytes split into two arrays at every possible boundary
        assert digest_arrays([flat[:1], flat[1:]]) != digest_arrays([flat])


def test_native_arrays_are_hashed_in_place_and_others_copied_once() -> None:
    native = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.shares_memory(canonical_array(native), native)  # a view, not a copy
    for other in (native.astype(">f4"), np.asfortranarray(native), native[:, ::2]):
        canonical = canonical_array(other)
        assert canonical.flags.c_contiguous and canonical.dtype.str == "<f4"
        assert np.array_equal(canonical, other)


def test_read_only_input_is_hashed_without_a_write() -> None:
    array = np.arange(6, dtype=np.float32)
    array.setflags(write=False)
    assert digest_arrays([array]) == digest_arrays([array.copy()])


def test_a_single_bit_flip_changes_the_digest() -> None:
    array = np.zeros(64, dtype=np.float32)
    flipped = array.copy()
    flipped.view(np.uint32)[17] ^= 1  # smallest subnormal: numerically ~1e-45
    assert digest_arrays([array]) != digest_arrays([flipped])


def test_object_arrays_are_refused() -> None:
    with pytest.raises(IntegrityError, match="object"):
        digest_arrays([np.array([1, "a"], dtype=object)])

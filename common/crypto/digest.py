"""Canonical SHA-256 digest of a list of arrays (model weights, in Keras layer order).

The digest is over a canonical byte string, so it depends on the *values*, dtype and shape only,
never on the memory layout (C or Fortran order, strides, byte order)::

    u64(len(arrays))
    for each array a (as C-contiguous little-endian):
        u64(len(dtype_str)) || dtype_str (ASCII, e.g. b"<f4", b"|u1")
        u64(a.ndim) || u64(shape[0]) || ... || u64(shape[ndim-1])
        raw bytes of a (a.nbytes of them)

with ``u64`` an unsigned 64-bit little-endian integer. Every variable-length field is prefixed by
its length, so two different lists can never serialise to the same string (no ambiguity between
the end of one array and the header of the next).

Cost: one SHA-256 pass over the bytes. Arrays that are already C-contiguous little-endian (what
NumPy, Keras and Flower produce) are hashed through a memoryview, without a copy.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from common.errors import IntegrityError

DIGEST_HEX_LENGTH = 64
"""Length of a hex SHA-256 digest; signatures and ledger entries rely on it."""


def canonical_array(array: NDArray[np.generic]) -> NDArray[np.generic]:
    """``array`` itself when C-contiguous little-endian, else the one copy that makes it so."""
    if array.dtype.hasobject:
        # Object arrays hold pointers, not values: their bytes mean nothing to hash.
        raise IntegrityError(f"cannot digest an array of dtype {array.dtype}; numeric arrays only")
    # newbyteorder("<") leaves native little-endian and byte-sized dtypes equal to themselves,
    # so this returns ``array`` itself, uncopied, in the common case.
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def array_header(array: NDArray[np.generic]) -> bytes:
    """Dtype string, ndim and shape of a :func:`canonical_array`, length-prefixed."""
    dtype_str = array.dtype.str.encode("ascii")  # '<f4' after canonical_array; '|u1' for bytes
    return struct.pack(
        f"<Q{len(dtype_str)}sQ{array.ndim}Q", len(dtype_str), dtype_str, array.ndim, *array.shape
    )


def digest_start(num_arrays: int) -> hashlib._Hash:
    """A SHA-256 state that has absorbed the array count, the first field of the serialisation."""
    return hashlib.sha256(struct.pack("<Q", num_arrays))


def raw_bytes(flat: NDArray[np.generic]) -> memoryview:
    """The bytes of a 1-d C-contiguous array or slice, as a view (no copy)."""
    return flat.view(np.uint8).data


def digest_arrays(arrays: Sequence[NDArray[np.generic]]) -> str:
    """Hex SHA-256 of the canonical serialisation of ``arrays`` (see the module docstring).

    Same values in another memory layout or byte order give the same digest; any change of
    value, dtype, shape, order or number of arrays gives a different one.
    """
    hasher = digest_start(len(arrays))
    for raw in arrays:
        array = canonical_array(np.asarray(raw))
        hasher.update(array_header(array))
        if array.nbytes:
            hasher.update(raw_bytes(array.reshape(-1)))  # reshape of C-contiguous: a view
    return hasher.hexdigest()


def is_hex_digest(value: str) -> bool:
    """True when ``value`` is a 64-character lowercase hex string (a well-formed digest)."""
    return len(value) == DIGEST_HEX_LENGTH and all(c in "0123456789abcdef" for c in value)

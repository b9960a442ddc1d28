"""Global-model checkpoints: one ``.npz`` per round, arrays in Keras layer order.

Arrays are stored positionally as ``arr_0 .. arr_{n-1}`` (``numpy.savez``) and always loaded
back in numeric order, never in the lexicographic order of the names (``arr_10`` < ``arr_2``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from common.errors import IntegrityError
from common.results import atomic_write

_NAME_PREFIX = "arr_"


def save_checkpoint(path: Path, arrays: Sequence[NDArray[np.generic]]) -> None:
    """Write ``arrays`` to ``path`` atomically (temp file, fsync, ``os.replace``)."""
    atomic_write(path, lambda handle: np.savez(handle, *arrays))


def load_checkpoint(path: str | os.PathLike[str]) -> list[NDArray[np.generic]]:
    """Arrays of a checkpoint, in the order they were saved; pickled objects are refused."""
    with np.load(path, allow_pickle=False) as archive:
        names = archive.files
        expected = [f"{_NAME_PREFIX}{index}" for index in range(len(names))]
        if sorted(names) != sorted(expected):
            raise IntegrityError(
                f"{path}: got arrays {names}; expected arr_0..arr_{len(names) - 1}"
            )
        return [archive[name] for name in expected]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (``hashlib.file_digest`` streams it, no full read)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()

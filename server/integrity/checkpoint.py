"""Global-model checkpoints: one ``.npz`` per round, arrays in Keras layer order.

Arrays are stored positionally as ``arr_0 .. arr_{n-1}`` (``numpy.savez``) and always loaded
back in numeric order, never in the lexicographic order of the names (``arr_10`` < ``arr_2``).

A checkpoint read by ``fedshield verify`` may have been crafted: :func:`load_checkpoint` turns
anything NumPy or ``zipfile`` cannot read into one :class:`UnreadableCheckpoint`, refuses
compressed members (``savez`` never writes them, and a zip bomb needs them) so the memory it
takes stays within the file's own size, and refuses pickled objects.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
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


class UnreadableCheckpoint(IntegrityError):
    """A checkpoint that is not a readable ``savez`` archive of numeric arrays."""


def _check_members(path: str | os.PathLike[str]) -> None:
    """Only stored (uncompressed) members whose sizes fit in the archive itself."""
    size = os.path.getsize(path)
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > size:
                raise UnreadableCheckpoint(
                    f"{path}: member {info.filename!r} is compressed or larger than the file"
                )


def load_checkpoint(path: str | os.PathLike[str]) -> list[NDArray[np.generic]]:
    """Arrays of a checkpoint, in the order they were saved; pickled objects are refused."""
    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as archive:
            names = archive.files
            expected = [f"{_NAME_PREFIX}{index}" for index in range(len(names))]
            if sorted(names) != sorted(expected):
                raise UnreadableCheckpoint(
                    f"{path}: got arrays {names}; expected arr_0..arr_{len(names) - 1}"
                )
            return [archive[name] for name in expected]
    except UnreadableCheckpoint:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError, MemoryError) as err:
        raise UnreadableCheckpoint(f"{path}: not a readable checkpoint ({err})") from None


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (``hashlib.file_digest`` streams it, no full read)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()

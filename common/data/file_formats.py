"""Parsers of the raw file formats the Keras-cache datasets use (no Keras, no code execution)."""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


def read_idx(path: Path, header: int) -> NDArray[np.uint8]:
    """The uint8 values of a gzipped IDX file (LeCun's format) after its ``header`` bytes."""
    with gzip.open(path, "rb") as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=header)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays: a CIFAR batch cannot run code on load."""

    _ALLOWED = frozenset(
        {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def read_cifar_batch(raw: bytes) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """``(images NHWC uint8, labels)`` of one CIFAR-10 batch, parsed without running code."""
    # Python-2 pickles of {b"data": uint8 (n, 3072) channel-major, b"labels": [int]}.
    batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data.transpose(0, 2, 3, 1), np.asarray(batch[b"labels"], dtype=np.int64)

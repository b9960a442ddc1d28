"""The resume checkpoint file: a tree of server state in one ``.npz``, written atomically.

``RUN_DIR/resume.npz`` holds what the round just recorded leaves for the next one (see
:mod:`server.resume` for which objects). The file is an ``np.savez`` archive read back with
``allow_pickle=False``: every array is its own member (``a0``, ``a1``, ...) and the tree around
them is JSON in the member ``tree``. Nothing in the file is ever executed, unlike a pickle, so a
checkpoint planted in a run directory cannot run code in the server that resumes it; the only
classes it can name are the ``NamedTuple`` states of :mod:`strategies` (the chain's stages).

Tree encoding (JSON): ``None``, ``bool``, ``int``, ``float`` (non-finite as ``{"f": "nan"}``),
``str`` as themselves; ``{"a": i}`` an array member; ``{"l": [...]}`` a list, ``{"t": [...]}`` a
tuple, ``{"d": [[key, value], ...]}`` a dict (any encodable keys), ``{"n": "module:Class",
"t": [...]}`` a ``NamedTuple``.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from common.errors import FedshieldError
from common.results import atomic_write

CHECKPOINT_FILE = "resume.npz"
FORMAT = 1
_STATE_PACKAGES = ("strategies",)
"""Modules whose ``NamedTuple`` classes a checkpoint may name (the chain's stage states)."""


class CheckpointError(FedshieldError):
    """A checkpoint that is missing, unreadable or for another run (one line, exit 2)."""


def _encode(value: Any, arrays: list[np.ndarray[Any, Any]]) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else {"f": repr(float(value))}
    if isinstance(value, np.ndarray):
        arrays.append(value)
        return {"a": len(arrays) - 1}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        name = f"{type(value).__module__}:{type(value).__qualname__}"
        return {"n": name, "t": [_encode(v, arrays) for v in value]}
    if isinstance(value, tuple):
        return {"t": [_encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return {"l": [_encode(v, arrays) for v in value]}
    if isinstance(value, dict):
        return {"d": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")


def _state_class(name: str) -> Callable[..., Any]:
    """The ``NamedTuple`` class ``module:Qualname``, only from :data:`_STATE_PACKAGES`."""
    module, _, qualname = name.partition(":")
    if module.split(".")[0] not in _STATE_PACKAGES:
        raise ValueError(f"state class {name!r} is outside {_STATE_PACKAGES}")
    cls = getattr(importlib.import_module(module), qualname, None)
    if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
        raise ValueError(f"{name!r} is not a NamedTuple state class")
    return cls


_NODES = {"a": int, "f": str, "n": str, "t": list, "l": list, "d": list}
"""Each node's keys and the JSON type of their values (``{"n", "t"}`` is the one pair)."""


def _decode(node: Any, arrays: list[np.ndarray[Any, Any]]) -> Any:
    if node is None or isinstance(node, bool | int | float | str):
        return node
    if (
        not isinstance(node, dict)
        or not (len(node) == 1 or set(node) == {"n", "t"})
        or not all(isinstance(v, _NODES.get(k, ())) for k, v in node.items())
    ):
        raise ValueError(f"unexpected node {str(node)[:40]!r}")
    if "a" in node:
        return arrays[node["a"]]
    if "f" in node:
        return float(node["f"])
    if "n" in node:
        return _state_class(node["n"])(*(_decode(v, arrays) for v in node["t"]))
    if "t" in node:
        return tuple(_decode(v, arrays) for v in node["t"])
    if "l" in node:
        return [_decode(v, arrays) for v in node["l"]]
    pairs = (_pair(item) for item in node["d"])
    return {_decode(k, arrays): _decode(v, arrays) for k, v in pairs}


def _pair(item: Any) -> tuple[Any, Any]:
    if not (isinstance(item, list) and len(item) == 2):
        raise ValueError(f"unexpected table entry {str(item)[:40]!r}")
    return item[0], item[1]


def write_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Replace ``run_dir/resume.npz`` with ``state``: the old file or the new one, never torn."""
    arrays: list[np.ndarray[Any, Any]] = []
    tree = json.dumps({"format": FORMAT, "state": _encode(state, arrays)})
    members = {f"a{i}": a for i, a in enumerate(arrays)}

    def write(handle: BinaryIO) -> None:
        np.savez(handle, tree=np.array(tree), **members)

    atomic_write(run_dir / CHECKPOINT_FILE, write)


def read_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The state of ``run_dir/resume.npz``; one-line :class:`CheckpointError` otherwise."""
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(
            f"--resume: got {str(run_dir)!r}; no {CHECKPOINT_FILE} in it (a run directory "
            "holds one once its first round is recorded)"
        )
    try:
        arrays, tree = _members(path.read_bytes())
        document = json.loads(tree)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"not a format-{FORMAT} checkpoint")
        state = _decode(document["state"], arrays)
    except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError) as err:
        raise CheckpointError(f"--resume: {path} is corrupt ({_first_line(err)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"--resume: {path} is corrupt (its state is not a table)")
    return state


def _members(data: bytes) -> tuple[list[np.ndarray[Any, Any]], str]:
    """The arrays and the tree text of an archive; ``ValueError`` for anything unreadable.

    The zip and ``.npy`` layers can raise far more than ``ValueError`` on damaged bytes
    (``BadZipFile``, ``NotImplementedError`` for a flipped compression method, ``RuntimeError``
    for a flipped encryption flag, ``EOFError``, ``zlib.error``...): whatever they raise, the
    file is corrupt. Members must be stored, as ``np.savez`` writes them: a compressed one
    could inflate to any size, so memory stays bounded by the file's size.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as members:
            packed = [
                i.filename for i in members.infolist() if i.compress_type != zipfile.ZIP_STORED
            ]
        if packed:  # np.savez stores; a compressed member could inflate to any size
            raise ValueError(f"compressed member {packed[0]!r} (a zip bomb?)")
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            tree = str(archive["tree"][()])
            count = len(archive.files) - 1
            return [archive[f"a{i}"] for i in range(count)], tree
    except Exception as err:  # any failure of the zip or .npy layers: see the docstring
        raise ValueError(_first_line(err)) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines() or [type(err).__name__])[0][:200]

"""Run outputs written crash-safely: a reader sees the old file or the new one, never a torn one.

Pattern: write a temporary file in the *same* directory (``os.replace`` is atomic only within
one filesystem), flush and ``fsync`` it, ``os.replace`` it over the target, then ``fsync`` the
directory so that the rename itself survives a power loss. On any error the temporary file is
removed and the target is untouched.

JSON is deterministic (``sort_keys``) and accepts numpy scalars and arrays. Non-finite floats are
written as ``NaN`` / ``Infinity`` (Python's reader accepts them): a diverging run under attack is
a result to record, not a reason to lose the metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from common.errors import IntegrityError

PathLike = str | os.PathLike[str]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None], *, mode: int = 0o644) -> None:
    """Create or replace ``path`` with what ``write`` puts into the binary handle it is given.

    ``mode`` replaces ``mkstemp``'s owner-only 0600, so run outputs are readable like any file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Create or replace ``path`` with ``text`` (UTF-8), atomically."""
    data = text.encode("utf-8")

    def write(handle: BinaryIO) -> None:
        handle.write(data)

    atomic_write(path, write)


def _to_builtin(value: object) -> object:
    # json's fallback for the numpy values metrics are made of.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(obj: object, *, indent: int | None = None) -> str:
    """Deterministic JSON of ``obj`` (sorted keys, numpy values converted to Python ones)."""
    return json.dumps(obj, default=_to_builtin, sort_keys=True, indent=indent)


def atomic_write_json(path: PathLike, obj: object) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically.

    Serialisation happens before any file is opened, so an object that cannot be serialised
    raises ``TypeError`` and leaves the old file as it was.
    """
    atomic_write_text(path, to_json(obj, indent=2) + "\n")


def append_line(path: PathLike, line: str) -> None:
    """Append ``line`` and a newline to ``path``; a crash can never leave half a line.

    Implemented as copy-and-replace rather than an ``O_APPEND`` write: a single ``write(2)`` on
    ``O_APPEND`` is atomic against other writers but can still be torn by a power loss or cut
    short by a full disk, leaving a partial last line; a replaced file cannot. The copy is linear
    in the file size; a metrics log holds one line per round (1,000 rounds are well under 1 MB),
    so the cost is negligible. Each log has one writer (the server), so no update is lost.
    """
    if "\n" in line:
        raise ValueError("a JSONL line cannot contain a newline")
    encoded = (line + "\n").encode("utf-8")
    source = Path(path)

    def write(handle: BinaryIO) -> None:
        if source.exists():
            with source.open("rb") as existing:
                shutil.copyfileobj(existing, handle)
        handle.write(encoded)

    atomic_write(source, write)


def append_jsonl(path: PathLike, record: Mapping[str, Any]) -> None:
    """Append ``record`` as one key-sorted JSON line (see :func:`append_line`)."""
    append_line(path, to_json(dict(record)))


def read_jsonl(path: PathLike) -> list[dict[str, Any]]:
    """Records of a JSONL file, in order; blank lines are skipped.

    Raises :class:`IntegrityError` naming the file and line if a line is not a JSON object.
    """
    records: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise IntegrityError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise IntegrityError(
                    f"{path}:{number}: expected a JSON object, got {line.strip()!r}"
                )
            records.append(record)
    return records


def plot_accuracy(metrics: Sequence[Mapping[str, Any]], path: PathLike, *, title: str) -> None:
    """Plot test accuracy per round (and ``attack_success_rate`` if recorded) to a PNG, atomically.

    Records without ``accuracy`` (e.g. training-only rounds) are skipped. Uses matplotlib's
    object API with the Agg canvas, so no global backend or pyplot state is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    curves = (("accuracy", "clean accuracy"), ("attack_success_rate", "attack success rate"))
    for key, label in curves:
        points = [(r["round"], r[key]) for r in metrics if r.get(key) is not None]
        if points:
            rounds, values = zip(*points, strict=True)
            axes.plot(rounds, values, marker="o", markersize=3, label=label)
    axes.set(xlabel="round", ylabel="rate", ylim=(0.0, 1.0), title=title)
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend(loc="lower right")
    atomic_write(path, lambda handle: figure.savefig(handle, format="png"))

"""Run outputs written crash-safely: a reader sees the old file or the new one, never a torn one.

Pattern: write a temporary file in the *same* directory (``os.replace`` is atomic only within
one filesystem), flush and ``fsync`` it, ``os.replace`` it over the target, then ``fsync`` the
directory so that the rename itself survives a power loss. On any error the temporary file is
removed and the target is untouched.

JSON is deterministic (``sort_keys``), accepts numpy scalars and arrays, and is strict (RFC 8259):
a diverging run under attack is a result to record, not a reason to lose the metrics, but the
``NaN`` / ``Infinity`` tokens Python would write are refused by strict readers (jq, browsers,
most languages). So a non-finite float becomes ``null`` plus a reason in a sibling key:

    {"loss": NaN}             ->  {"loss": null, "loss_reason": "non-finite: nan"}
    {"eps": [1.0, Infinity]}  ->  {"eps": [1.0, null], "eps_reason": {"/1": "non-finite: inf"}}

(inside a list, the reason maps JSON pointers relative to the list, RFC 6901, to the value).
:func:`read_jsonl` and :func:`read_json` put the floats back, so a record round-trips exactly.
A producer may write its own ``null`` plus ``<key>_reason`` for a value it withholds; readers
keep those as they are.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard

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


REASON_SUFFIX = "_reason"
_TOKENS = {"non-finite: nan": math.nan, "non-finite: inf": math.inf, "non-finite: -inf": -math.inf}


def _to_builtin(value: object) -> object:
    # json's fallback for the numpy values metrics are made of.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _token(value: object) -> str | None:
    """The reason for a non-finite float (numpy ones included), None for anything else."""
    if isinstance(value, np.floating):
        value = float(value)
    if not isinstance(value, float) or math.isfinite(value):
        return None
    return "non-finite: nan" if math.isnan(value) else f"non-finite: {value:g}"


def _encode(value: object) -> object:
    """``value`` with each non-finite float made ``null`` and explained (see the module doc)."""
    if isinstance(value, Mapping):
        out: dict[object, object] = {}
        for key, item in value.items():
            out[key], reason = _encode_member(item)
            if reason is not None:
                if f"{key}{REASON_SUFFIX}" in value:
                    raise ValueError(f"{key!r} is non-finite and {key}{REASON_SUFFIX} is taken")
                out[f"{key}{REASON_SUFFIX}"] = reason
        return out
    encoded, reason = _encode_member(value)
    if reason is not None:
        raise ValueError(f"non-finite value outside a JSON object: {reason}")
    return encoded


def _encode_member(value: object) -> tuple[object, object]:
    # (encoded value, its reason or None); list entries report by JSON pointer.
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if (token := _token(value)) is not None:
        return None, token
    if isinstance(value, list | tuple):
        reasons: dict[str, str] = {}
        return _encode_list(value, "", reasons), reasons or None
    return (_encode(value) if isinstance(value, Mapping) else value), None


def _encode_list(items: Any, prefix: str, reasons: dict[str, str]) -> list[object]:
    out: list[object] = []
    for index, item in enumerate(items.tolist() if isinstance(items, np.ndarray) else items):
        if (token := _token(item)) is not None:
            reasons[f"{prefix}/{index}"] = token
            out.append(None)
        elif isinstance(item, list | tuple | np.ndarray):
            out.append(_encode_list(item, f"{prefix}/{index}", reasons))
        else:
            out.append(_encode(item) if isinstance(item, Mapping) else item)
    return out


def _decode(value: object) -> object:
    """Inverse of :func:`_encode`: the writer's reasons become floats again, others stay."""
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: _decode(item) for key, item in value.items()}
    for key in [k for k in out if k.endswith(REASON_SUFFIX) and k[: -len(REASON_SUFFIX)] in out]:
        base, reason = key[: -len(REASON_SUFFIX)], out[key]
        if out[base] is None and isinstance(reason, str) and reason in _TOKENS:
            out[base] = _TOKENS[reason]
        elif isinstance(out[base], list) and _is_pointer_map(reason):
            for pointer, token in reason.items():
                _restore(out[base], pointer, _TOKENS[token])
        else:
            continue
        del out[key]
    return out


def _is_pointer_map(reason: object) -> TypeGuard[dict[str, str]]:
    return isinstance(reason, dict) and all(
        isinstance(t, str) and t in _TOKENS for t in reason.values()
    )


def _restore(items: Any, pointer: str, number: float) -> None:
    # ``pointer`` is "/i/j/...": list indices only, as _encode_list writes them.
    *path, last = (int(part) for part in pointer.split("/")[1:])
    for part in path:
        items = items[part]
    items[last] = number


def to_json(obj: object, *, indent: int | None = None) -> str:
    """Strict, deterministic JSON of ``obj`` (sorted keys, numpy values as Python ones,
    non-finite floats as ``null`` plus a reason)."""
    return json.dumps(
        _encode(obj), default=_to_builtin, sort_keys=True, indent=indent, allow_nan=False
    )


def read_json(path: PathLike) -> Any:
    """A JSON file written by :func:`atomic_write_json`, non-finite floats restored."""
    return _decode(json.loads(Path(path).read_text(encoding="utf-8")))


def atomic_write_json(path: PathLike, obj: object) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically.

    Serialisation happens before any file is opened, so an object that cannot be serialised
    raises ``TypeError`` and leaves the old file as it was.
    """
    atomic_write_text(path, to_json(obj, indent=2) + "\n")


def append_lines(path: PathLike, lines: Sequence[str]) -> None:
    """Append ``lines``, each with a newline, to ``path``: all of them or none, never half a line.

    Implemented as copy-and-replace rather than an ``O_APPEND`` write: a single ``write(2)`` on
    ``O_APPEND`` is atomic against other writers but can still be torn by a power loss or cut
    short by a full disk, leaving a partial last line; a replaced file cannot. The copy is linear
    in the file size; a metrics log holds one line per round (1,000 rounds are well under 1 MB),
    so the cost is small, and a round's many lines (one per client) share one copy and one
    ``fsync``. Each log has one writer (the server), so no update is lost.
    """
    if any("\n" in line for line in lines):
        raise ValueError("a JSONL line cannot contain a newline")
    if not lines:
        return
    encoded = "".join(f"{line}\n" for line in lines).encode("utf-8")
    source = Path(path)

    def write(handle: BinaryIO) -> None:
        if source.exists():
            with source.open("rb") as existing:
                shutil.copyfileobj(existing, handle)
        handle.write(encoded)

    atomic_write(source, write)


def append_line(path: PathLike, line: str) -> None:
    """Append ``line`` and a newline to ``path`` (:func:`append_lines`)."""
    append_lines(path, [line])


def append_jsonl(path: PathLike, *records: Mapping[str, Any]) -> None:
    """Append each record as one key-sorted JSON line, all in one atomic append
    (:func:`append_lines`)."""
    append_lines(path, [to_json(dict(record)) for record in records])


def read_jsonl(path: PathLike) -> list[dict[str, Any]]:
    """Records of a JSONL file, in order (non-finite floats restored); blank lines are skipped.

    Raises :class:`IntegrityError` naming the file and line if a line is not a JSON object.
    """
    records: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = _decode(json.loads(line))
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
    curves = (
        ("accuracy", "clean accuracy"),
        ("attack_success_rate", "attack success rate"),
        ("robust_accuracy_fgsm", "robust accuracy (FGSM)"),
        ("robust_accuracy_pgd", "robust accuracy (PGD)"),
    )
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

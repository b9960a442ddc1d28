"""Shared by the fuzz tests (and reusable by any reader of run directories, e.g. ``report``).

* Generated values: :func:`json_values` (what a TOML document, a ``--set`` value or a JSON
  file may hold, non-finite floats included) and :func:`toml_document` (a table as TOML text).
* Damage to a file: :func:`damage` applies one :func:`file_damage` (truncate, overwrite bytes,
  insert bytes, a JSON value replaced in one line, delete, replace with a directory).
* The contract, :func:`one_line_outcome`: an in-process ``fedshield`` call returns an allowed
  exit code, and whatever it prints on stderr is at most one ``error:`` line (never a
  traceback, which would escape ``main`` and fail the test).

Hypothesis settings: :data:`FUZZ` (no deadline: the shared machine is slow at times; the
example counts keep each test under about 20 s).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.cli_helpers import run_cli

FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # CI sees the same cases every time; a failure is reproducible
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "nan", "inf", "krum", "digits", "1e400", "-0", "true", "\x00", "é"]),
)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Nested lists and string-keyed tables of scalars."""
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            repr(value)
            if math.isfinite(value)
            else {"nan": "nan", "inf": "inf"}.get(str(value), "-inf")
        )
    if isinstance(value, str):
        # A JSON string is a TOML basic string once DEL is escaped too (TOML forbids it raw).
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    raise TypeError(type(value))


def toml_document(table: Mapping[str, Any]) -> str:
    """``table`` as TOML text, one ``"key" = value`` line per entry (TOML has no null: dropped)."""
    return "".join(
        f"{_toml_value(k)} = {_toml_value(v)}\n" for k, v in table.items() if v is not None
    )


def paths_of(document: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a nested table (tables and their leaves)."""
    found = []
    for key, value in document.items():
        found.append((*prefix, key))
        if isinstance(value, dict):
            found.extend(paths_of(value, (*prefix, key)))
    return found


def replaced(document: Any, path: tuple[str, ...], value: Any) -> Any:
    """A copy of ``document`` with the entry at ``path`` set to ``value``."""
    if not path:
        return value
    copy = dict(document) if isinstance(document, dict) else {}
    copy[path[0]] = replaced(copy.get(path[0], {}), path[1:], value)
    return copy


file_damage = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("overwrite"), st.floats(0.0, 1.0), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("insert"), st.floats(0.0, 1.0), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("json"), st.integers(0, 50), json_values(6)),
    st.tuples(st.just("delete")),
    st.tuples(st.just("directory")),
)


def json_damage(data: bytes, index: int, value: Any) -> bytes:
    """JSON text ``data`` with one key of one line (or of the document) set to ``value``."""
    return _json_damage(data, index, value)


def damage(path: Path, how: tuple[Any, ...]) -> None:
    """Apply one generated :data:`file_damage` to ``path``."""
    kind = how[0]
    if kind in ("delete", "directory"):
        path.unlink()
        if kind == "directory":
            path.mkdir()
        return
    data = path.read_bytes()
    if kind == "json":
        path.write_bytes(_json_damage(data, how[1], how[2]))
        return
    at = int(how[1] * len(data))
    if kind == "truncate":
        path.write_bytes(data[:at])
    elif kind == "overwrite":
        path.write_bytes(data[:at] + how[2] + data[at + len(how[2]) :])
    else:
        path.write_bytes(data[:at] + how[2] + data[at:])


def _json_damage(data: bytes, index: int, value: Any) -> bytes:
    """One key of one JSON line (or of the whole file) set to ``value``."""
    try:
        lines = data.decode("utf-8").splitlines() or ["{}"]
        line = index % len(lines)
        record = json.loads(lines[line]) if len(lines) > 1 else json.loads(data)
    except ValueError:  # not UTF-8 or not JSON (any more): nothing to edit
        return data
    if isinstance(record, dict) and record:
        key = sorted(record)[index % len(record)]
        record[key] = value
    else:
        record = value
    text = json.dumps(record, allow_nan=True)
    if len(lines) == 1:
        return text.encode("utf-8")
    lines[line] = text.replace("\n", " ")
    return ("\n".join(lines) + "\n").encode("utf-8")


def copy_tree(source: Path, target: Path) -> Path:
    """A fresh copy of ``source`` at ``target`` (replacing what was there)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return target


def one_line_outcome(
    capsys: pytest.CaptureFixture[str], argv: Iterable[str], codes: Iterable[int]
) -> tuple[int, list[str], list[str]]:
    """Run ``fedshield argv`` in process: an allowed code and at most one stderr line."""
    code, out, err = run_cli(capsys, *argv)
    assert code in set(codes), (code, out, err)
    assert len(err) <= 1, err
    assert all(line.startswith("error: ") for line in err), err
    return code, out, err

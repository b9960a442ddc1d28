"""Gather the runs of a report directory: a sweep's cells, or every run directory below it.

A run directory holds ``scenario.json`` (the resolved scenario), ``summary.json`` (written by
``server/run_log.py`` when the run ends, ``status`` finished or interrupted) and
``metrics.jsonl`` (one record per round). Two layouts are reported on:

* a sweep directory, with ``sweep.json`` = ``{"command", "grid", "fields", "cells": [{"id",
  "dir", "coordinates", "status", "group"}]}``: the cells in their order, the swept fields as
  the sweep declared them;
* any directory of single runs, searched recursively: the swept fields are the scenario
  fields whose values differ between the runs (``output``, the run's parent directory, never;
  ``name`` only when nothing else differs).

A run that cannot be read in full (a file missing or not valid JSON, a truncated line, a
scenario this version of fedshield cannot read, a run still going or interrupted) is left out
with a one-line note; the report says which and why. Only a directory with nothing usable in
it is an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.errors import FedshieldError
from common.results import read_json, read_jsonl
from common.schema import Scenario
from common.validation import one_line

RUN_FILES = ("scenario.json", "summary.json", "metrics.jsonl")
SWEEP_FILE = "sweep.json"


class ReportError(FedshieldError):
    """The directory cannot be reported on at all (the CLI prints it on one line)."""


class Unusable(Exception):
    """One run directory that cannot be reported on; the message says why, on one line."""


@dataclass(frozen=True)
class Run:
    """One finished run: its identity in the report and what it recorded."""

    id: str
    """Its directory relative to the report directory (POSIX separators)."""
    scenario: Scenario
    summary: Mapping[str, Any]
    rows: tuple[Mapping[str, Any], ...]
    coordinates: Mapping[str, Any]
    """Swept field (dotted) -> its value in this run."""


@dataclass(frozen=True)
class Runs:
    """Everything a report is built from."""

    directory: Path
    runs: tuple[Run, ...]
    fields: tuple[str, ...]
    skipped: tuple[str, ...]
    """``"<run>: <why>"`` for every run left out."""
    command: str | None
    grid: str | None = None
    """The sweep's grid file as ``sweep.json`` names it (None for single runs)."""


def _json_file(path: Path) -> Any:
    if not path.is_file():
        raise Unusable(f"no {path.name}")
    try:
        return read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise Unusable(f"{path.name} is not valid JSON ({err})") from None


def _rows(run_dir: Path, summary: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise Unusable("no metrics.jsonl")
    try:
        rows = read_jsonl(path)
    except FedshieldError as err:  # IntegrityError naming the line; the path made relative
        raise Unusable(str(err).replace(str(run_dir) + os.sep, "")) from None
    except UnicodeDecodeError:
        raise Unusable("metrics.jsonl is not UTF-8 text") from None
    rounds = [r.get("round") for r in rows]
    for index, row in enumerate(rows, start=1):
        if not isinstance(row.get("round"), int) or not _is_number(row.get("accuracy")):
            raise Unusable(f"metrics.jsonl:{index}: a record needs an integer round and accuracy")
    if not rows or rounds != sorted(set(rounds)):  # type: ignore[type-var]
        raise Unusable("metrics.jsonl has no rounds, or rounds out of order")
    # Runs from before ``last_round`` existed were complete when they wrote a summary.
    last = summary.get("last_round", summary.get("rounds"))
    if rounds[-1] != last:
        raise Unusable(
            f"metrics.jsonl ends at round {rounds[-1]} but summary.json says {last} "
            "(a truncated file)"
        )
    return tuple(rows)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def load_run(run_dir: Path) -> tuple[Scenario, Mapping[str, Any], tuple[Mapping[str, Any], ...]]:
    """``(scenario, summary, rows)`` of a finished run; :class:`Unusable` says what is wrong."""
    raw = _json_file(run_dir / "scenario.json")
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as err:
        raise Unusable(f"scenario.json: {one_line(err)}") from None
    summary = _json_file(run_dir / "summary.json")
    if not isinstance(summary, dict):
        raise Unusable("summary.json is not a JSON object")
    status = summary.get("status", "finished")  # written only at the end before it existed
    if status != "finished":
        raise Unusable(f"{status} after round {summary.get('last_round')}")
    return scenario, summary, _rows(run_dir, summary)


def flat_fields(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted field -> value of a nested JSON object (lists are values, not descended; an
    empty table has no fields, so ``defense.params = {}`` reads as every parameter unset)."""
    if not isinstance(value, Mapping):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key in sorted(value):
        out.update(flat_fields(value[key], f"{prefix}.{key}" if prefix else str(key)))
    return out


def differing_fields(scenarios: Sequence[Scenario]) -> tuple[str, ...]:
    """The scenario fields whose values are not the same in every run, in schema order."""
    flats = [flat_fields(s.model_dump(mode="json")) for s in scenarios]
    keys = sorted({key for flat in flats for key in flat})
    canon = [{k: json.dumps(flat.get(k), sort_keys=True) for k in keys} for flat in flats]
    differ = [k for k in keys if len({c[k] for c in canon}) > 1 and k != "output"]
    informative = [k for k in differ if k != "name"]
    return tuple(informative or differ)


def _relative(path: Path, directory: Path) -> str:
    return path.relative_to(directory).as_posix() or "."


def _from_tree(directory: Path) -> Runs:
    found: list[tuple[str, Scenario, Mapping[str, Any], tuple[Mapping[str, Any], ...]]] = []
    skipped = []
    for run_dir in _run_dirs(directory):
        name = _relative(run_dir, directory)
        try:
            found.append((name, *load_run(run_dir)))
        except Unusable as why:
            skipped.append(f"{name}: {why}")
    fields = differing_fields([scenario for _, scenario, _, _ in found])
    runs = []
    for name, scenario, summary, rows in found:
        flat = flat_fields(scenario.model_dump(mode="json"))
        coordinates = {field: flat.get(field) for field in fields}
        runs.append(Run(name, scenario, summary, rows, coordinates))
    return Runs(directory, tuple(runs), fields, tuple(skipped), None)


def _run_dirs(directory: Path) -> list[Path]:
    """Every directory holding a run file, in sorted order; a run's own subfolders are not
    searched (checkpoints are not runs)."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if any(name in files for name in RUN_FILES):
            found.append(Path(root))
            dirs[:] = []
    return sorted(found, key=lambda p: _relative(p, directory))


def _sweep(path: Path) -> Mapping[str, Any]:
    try:
        sweep = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: not valid JSON ({err})") from None
    cells = sweep.get("cells") if isinstance(sweep, dict) else None
    if not isinstance(cells, list) or not all(
        isinstance(c, dict) and isinstance(c.get("dir"), str) for c in cells
    ):
        raise ReportError(f"{path}: expected an object whose 'cells' list gives each cell's 'dir'")
    return dict(sweep)


def _from_sweep(directory: Path) -> Runs:
    sweep = _sweep(directory / SWEEP_FILE)
    runs, skipped = [], []
    for cell in sweep["cells"]:
        coordinates = cell.get("coordinates")
        name = str(cell.get("id", cell["dir"]))
        try:
            run_dir = directory / cell["dir"]
            if not run_dir.is_dir():
                raise Unusable(f"not run ({cell.get('status', 'no status')})")
            if not isinstance(coordinates, dict):
                raise Unusable("sweep.json gives no coordinates")
            runs.append(Run(cell["dir"], *load_run(run_dir), coordinates))
        except Unusable as why:
            skipped.append(f"{name}: {why}")
    fields = sweep.get("fields")
    if not isinstance(fields, list):
        fields = sorted({field for run in runs for field in run.coordinates})
    command, grid = sweep.get("command"), sweep.get("grid")
    return Runs(
        directory,
        tuple(runs),
        tuple(str(f) for f in fields),
        tuple(skipped),
        command if isinstance(command, str) else None,
        grid if isinstance(grid, str) else None,
    )


def collect(directory: Path) -> Runs:
    """The runs of ``directory`` (see the module docstring); :class:`ReportError` if none."""
    if not directory.is_dir():
        raise ReportError(f"report: {str(directory)!r} is not a directory")
    runs = _from_sweep(directory) if (directory / SWEEP_FILE).is_file() else _from_tree(directory)
    if not runs.runs:
        why = "; ".join(runs.skipped[:3]) + (" ..." if len(runs.skipped) > 3 else "")
        raise ReportError(
            f"report: no finished run in {directory} (a run directory holds "
            f"{', '.join(RUN_FILES)})" + (f"; skipped: {why}" if why else "")
        )
    return runs

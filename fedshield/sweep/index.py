"""``sweep.json``: the sweep's own index, and what a restart finds already done.

```json
{"command": "fedshield sweep smoke", "grid": "smoke", "fields": ["defense.aggregator", ...],
 "cells": [{"id": "...", "dir": "cells/<id>", "coordinates": {...}, "status": "finished",
            "group": 0}, ...],
 "sessions": [{"group": 0, "started": "2026-12-01T19:30:01.123+00:00", "ended": "..."}]}
```

``status`` is ``pending``, ``finished``, ``interrupted``, ``failed`` (with ``error``) or
``invalid`` (with ``error``; group -1). ``sessions`` holds when each group this invocation ran
started and ended (UTC; on a cluster several overlap). Each cell's directory holds what a
single run writes (``scenario.json``, ``metrics.jsonl``, ``summary.json``, ``accuracy.png``).
The index is rewritten atomically after every cell, so a reader never sees half of it.

A restart trusts a cell's own files, not the index: a cell is done when its ``summary.json``
says ``finished`` and its ``scenario.json`` is the scenario the grid asks for now. Anything
else (no directory, an interrupted or failed run, a half-written one) is run again from an
empty directory.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.errors import ConfigError
from common.results import atomic_write_json, read_json
from common.schema import Scenario
from fedshield.sweep.plan import Plan, PlannedCell

INDEX = "sweep.json"
CELLS = "cells"


@dataclass
class SweepIndex:
    """The cells' statuses, written to ``sweep.json`` on every change."""

    sweep_dir: Path
    command: str
    grid: str
    fields: list[str]
    plan: Plan

    def __post_init__(self) -> None:
        self._lock = threading.Lock()  # the ServerApp thread and the main thread both write
        self.sessions: dict[int, tuple[str, str]] = {}
        self.status: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        for item in self.plan.cells:
            if item.error is not None:
                self.status[item.cell.id], self.errors[item.cell.id] = "invalid", item.error
            else:
                self.status[item.cell.id] = "finished" if self._done(item) else "pending"

    def run_dir(self, item: PlannedCell) -> Path:
        """Where the cell writes its run's files."""
        return self.sweep_dir / CELLS / item.cell.id

    def _done(self, item: PlannedCell) -> bool:
        directory = self.run_dir(item)
        summary, scenario = directory / "summary.json", directory / "scenario.json"
        if not summary.is_file() or read_json(summary).get("status") != "finished":
            return False
        assert item.scenario is not None  # only valid cells are looked up
        wanted = item.scenario.model_dump(mode="json")
        if stored_scenario(scenario) != wanted:
            raise ConfigError(
                f"sweep: {directory} holds a finished run of a different scenario than the grid "
                "now gives that cell; restore the grid or use another --out"
            )
        return True

    def to_run(self) -> list[PlannedCell]:
        """Valid cells not finished yet, in grid order."""
        return [c for c in self.plan.cells if self.status[c.cell.id] in _RUNNABLE]

    def count(self, status: str) -> int:
        """How many cells have ``status``."""
        return sum(1 for s in self.status.values() if s == status)

    def set(self, item: PlannedCell, status: str, error: str | None = None) -> None:
        """Record a cell's status (and its error) and rewrite the index."""
        with self._lock:
            self.status[item.cell.id] = status
            if error is None:
                self.errors.pop(item.cell.id, None)
            else:
                self.errors[item.cell.id] = error
            self.write()

    def session(self, group: int, started: str, ended: str) -> None:
        """Record when the session of ``group`` started and ended, and rewrite the index."""
        with self._lock:
            self.sessions[group] = (started, ended)
            self.write()

    def write(self) -> None:
        """Write ``sweep.json`` atomically."""
        atomic_write_json(self.sweep_dir / INDEX, self.document())

    def document(self) -> dict[str, Any]:
        """The index as ``sweep.json`` holds it."""
        cells = []
        for item in self.plan.cells:
            entry: dict[str, Any] = {
                "id": item.cell.id,
                "dir": f"{CELLS}/{item.cell.id}",
                "coordinates": item.cell.coordinates,
                "status": self.status[item.cell.id],
                "group": item.group,
            }
            if item.cell.id in self.errors:
                entry["error"] = self.errors[item.cell.id]
            cells.append(entry)
        sessions = [
            {"group": group, "started": started, "ended": ended}
            for group, (started, ended) in sorted(self.sessions.items())
        ]
        return {
            "command": self.command,
            "grid": self.grid,
            "fields": self.fields,
            "cells": cells,
            "sessions": sessions,
        }


_RUNNABLE = ("pending", "interrupted", "failed")


def fresh_run_dir(directory: Path) -> None:
    """An empty run directory: a half-done or failed attempt leaves nothing behind."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)


def stored_scenario(path: Path) -> dict[str, Any] | None:
    """The scenario a run stored, read with this version's schema (None when unreadable).

    A field added to the schema since the run reads as its default, so a sweep resumes across
    an upgrade that only added settings; a changed value still differs.
    """
    if not path.is_file():
        return None
    try:
        return Scenario.model_validate(read_json(path)).model_dump(mode="json")
    except (ValidationError, ValueError):
        return None

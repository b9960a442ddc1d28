"""The shipped grids' stored results reproduce their committed reports (issue 12's acceptance).

``benchmarks/results/GRID`` holds what ``fedshield sweep GRID`` wrote that a report reads
(``sweep.json`` and each cell's ``scenario.json``, ``summary.json`` and ``metrics.jsonl``) next
to the report, tables and figures it produced. Regenerating them from the stored runs alone, in
another directory, must give the committed files byte for byte: a change to the report code that
alters a published figure fails here.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from fedshield.report import build_report
from fedshield.sweep.grid import load_grid

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
GRIDS = ("defenses_vs_attacks", "backdoors_vs_defenses", "iba_vs_defenses", "fedsgd_vs_fedopt")
OUTPUTS = ("report.md", "results.csv", "results.jsonl", "heatmap.png", "curves.png", "fraction.png")


@pytest.mark.parametrize("grid", GRIDS)
def test_fedshield_report_on_the_stored_runs_gives_the_committed_report(
    grid: str, tmp_path: Path
) -> None:
    stored = RESULTS / grid
    copy = tmp_path / grid
    shutil.copytree(stored, copy, ignore=shutil.ignore_patterns(*OUTPUTS))
    assert not any((copy / name).exists() for name in OUTPUTS)
    build_report(copy)
    for name in OUTPUTS:
        assert (copy / name).read_bytes() == (stored / name).read_bytes(), name


@pytest.mark.parametrize("grid", GRIDS)
def test_the_stored_results_cover_every_cell_of_the_shipped_grid(grid: str) -> None:
    cells = load_grid(grid).cells()
    with (RESULTS / grid / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(cells)
    assert {row["run"] for row in rows} == {f"cells/{cell.id}" for cell in cells}
    assert all(0.0 <= float(row["final_accuracy"]) <= 1.0 for row in rows)

"""Benchmark reports from stored runs: ``results.csv``, ``results.jsonl``, figures, ``report.md``.

>>> build_report(Path("runs/sweep-defenses"))  # doctest: +SKIP
PosixPath('runs/sweep-defenses/report.md')

Nothing is run: every figure is read from the run directories (``collect.py``). The steps:
collect the runs, one record per run (``records.py``), cells over seeds and their tables
(``tables.py``), the figures (``plots.py``) and the Markdown (``markdown.py``). Output is
deterministic: the same stored results give the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.results import atomic_write_text, to_json
from fedshield.report import plots
from fedshield.report.breakdown import breakdown_point
from fedshield.report.collect import ReportError, Runs, collect
from fedshield.report.markdown import FIGURES, Breakdown, render
from fedshield.report.records import columns, run_record
from fedshield.report.tables import cells
from strategies import AGGREGATORS

__all__ = ["ReportError", "build_report", "write_report", "write_results"]


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True)


def write_results(
    directory: Path, records: Sequence[Mapping[str, Any]], header: Sequence[str]
) -> None:
    """``results.csv`` (columns ``header``, empty for a figure a run lacks) and
    ``results.jsonl`` (the same records, ``null`` for a figure a run lacks)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for record in records:
        writer.writerow([_csv_value(record.get(column)) for column in header])
    atomic_write_text(directory / "results.csv", text.getvalue())
    lines = [to_json({c: record.get(c) for c in header}) for record in records]
    atomic_write_text(directory / "results.jsonl", "".join(f"{line}\n" for line in lines))


def _breakdowns(runs: Runs, records: Sequence[Mapping[str, Any]]) -> list[Breakdown]:
    first: dict[str, Breakdown] = {}
    for run, record in zip(runs.runs, records, strict=True):
        scenario = run.scenario
        if record["defense"] not in first:
            aggregator = scenario.defense.aggregator
            first[record["defense"]] = Breakdown(
                record["defense"],
                aggregator,
                AGGREGATORS[aggregator].target.bound,
                scenario.num_sampled,
                breakdown_point(scenario),
            )
    return [first[d] for d in sorted(first)]


def build_report(directory: Path, *, command: str | None = None) -> Path:
    """Write the results, the figures and ``report.md`` into ``directory``; returns its path.

    ``command`` is the command that made the runs, when ``sweep.json`` does not say it.
    Raises :class:`ReportError` (one line) when ``directory`` holds no usable run; runs that
    cannot be read are listed in the report, not fatal.
    """
    return write_report(directory, command=command)[0]


def write_report(directory: Path, *, command: str | None = None) -> tuple[Path, Runs]:
    """:func:`build_report`, also returning the runs it read (and the ones it skipped)."""
    runs = collect(Path(directory))
    records = [run_record(run) for run in runs.runs]
    write_results(runs.directory, records, columns(records, runs.fields))
    grid = cells(records, runs.fields)
    breakdown = _breakdowns(runs, records)
    curves = {
        run.id: [(int(r["round"]), float(r["accuracy"])) for r in run.rows] for run in runs.runs
    }
    out = runs.directory
    plots.heatmap(grid, out / FIGURES["heatmap"])
    plots.curves(grid, curves, out / FIGURES["curves"])
    plots.fraction(grid, {b.defense: b.point for b in breakdown}, out / FIGURES["fraction"])
    report = out / "report.md"
    atomic_write_text(report, render(runs, grid, records, breakdown, command=command))
    return report, runs

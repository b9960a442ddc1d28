"""``fedshield report`` on a directory of single runs, and on directories it cannot use.

The adversary here is a damaged results directory (a crash, a full disk, a hand edit, a run
still going): every such run is named and left out in one line, never a traceback.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from common.results import atomic_write_json
from fedshield.report.collect import ReportError, collect, differing_fields
from tests.cli_helpers import run_cli
from tests.report._synthetic_runs import scenario, write_run


def _tree(root: Path) -> Path:
    """Four runs made one by one, two levels deep: fedavg and krum, seeds 1 and 2."""
    for defense in ("fedavg", "krum"):
        for seed in (1, 2):
            write_run(root / defense / f"{defense}-seed{seed}", defense, "alie", 0.1, seed)
    return root


def test_single_runs_are_found_recursively_and_the_differing_fields_are_swept(
    tmp_path: Path,
) -> None:
    runs = collect(_tree(tmp_path))
    assert [run.id for run in runs.runs] == [
        "fedavg/fedavg-seed1",
        "fedavg/fedavg-seed2",
        "krum/krum-seed1",
        "krum/krum-seed2",
    ]
    # name differs too, but says nothing the defense does not; output never counts.
    assert runs.fields == ("defense.aggregator", "defense.params.num_byzantine", "seed")
    assert runs.runs[2].coordinates == {
        "defense.aggregator": "krum",
        "defense.params.num_byzantine": 2,
        "seed": 1,
    }
    assert runs.runs[0].coordinates["defense.params.num_byzantine"] is None


def test_only_the_name_differing_makes_it_the_swept_field() -> None:
    a = scenario("fedavg", "alie", 0.1, 1)
    b = a.model_copy(update={"name": "other", "output": "elsewhere"})
    assert differing_fields([a, b]) == ("name",)


def test_report_of_single_runs_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "report", str(_tree(tmp_path)))
    assert code == 0 and err == []
    assert out == [f"ok: 4 runs reported in {tmp_path / 'report.md'} (0 skipped)"]
    report = (tmp_path / "report.md").read_text()
    assert "made one by one" in report
    assert "| fedavg | **0.8150 ± 0.0071** |" in report
    with (tmp_path / "results.csv").open() as handle:
        assert [r["run"] for r in csv.DictReader(handle)][-1] == "krum/krum-seed2"


def _damage(root: Path) -> dict[str, str]:
    """One good run and one of each kind of damage; returns run -> the note expected."""
    write_run(root / "good", "median", "alie", 0.1, 1)
    bad_json = write_run(root / "bad_json", "median", "alie", 0.1, 2)
    (bad_json / "scenario.json").write_text('{"name": "x", ')
    no_summary = write_run(root / "no_summary", "median", "alie", 0.1, 3)
    (no_summary / "summary.json").unlink()
    truncated = write_run(root / "truncated", "median", "alie", 0.1, 4)
    text = (truncated / "metrics.jsonl").read_text()
    (truncated / "metrics.jsonl").write_text(text[:-40])  # a line cut in half
    short = write_run(root / "short", "median", "alie", 0.1, 5)
    lines = (short / "metrics.jsonl").read_text().splitlines(keepends=True)
    (short / "metrics.jsonl").write_text("".join(lines[:-1]))  # the last whole line lost
    stopped = write_run(root / "stopped", "median", "alie", 0.1, 6)
    summary = json.loads((stopped / "summary.json").read_text())
    atomic_write_json(stopped / "summary.json", {**summary, "status": "interrupted"})
    alien = write_run(root / "alien", "median", "alie", 0.1, 7)
    atomic_write_json(alien / "scenario.json", {"name": "x", "seed": 1, "rounds": 0})
    binary = write_run(root / "binary", "median", "alie", 0.1, 8)
    (binary / "metrics.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    return {
        "alien": "alien: scenario.json: rounds: got 0",
        "bad_json": "bad_json: scenario.json is not valid JSON (Expecting",
        "binary": "binary: metrics.jsonl is not UTF-8 text",
        "no_summary": "no_summary: no summary.json",
        "short": "short: metrics.jsonl ends at round 2 but summary.json says 3 (a truncated file)",
        "stopped": "stopped: interrupted after round 3",
        "truncated": "truncated: metrics.jsonl:4: not valid JSON",
    }


def test_damaged_runs_are_skipped_with_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _damage(tmp_path)
    code, out, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 0, err
    assert out == [f"ok: 1 runs reported in {tmp_path / 'report.md'} (7 skipped)"]
    assert len(err) == 7 and not any("Traceback" in line for line in err)
    for line, (name, note) in zip(err, sorted(expected.items()), strict=True):
        assert line.startswith(f"skipped {note}"), (name, line)
    report = (tmp_path / "report.md").read_text()
    assert "1 runs in 1 cells; 7 skipped (listed at the end)" in report
    skipped = report.split("## Skipped runs\n\n", 1)[1].splitlines()
    assert [line.split(":")[0] for line in skipped] == [f"- {n}" for n in sorted(expected)]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "report: no finished run in {d} (a run directory holds"),
        (lambda d: (d / "sweep.json").write_text("[1, 2"), "{d}/sweep.json: not valid JSON"),
        (
            lambda d: (d / "sweep.json").write_text('{"cells": [{"id": 1}]}'),
            "{d}/sweep.json: expected an object whose 'cells' list gives each cell's 'dir'",
        ),
    ],
    ids=["empty", "sweep-not-json", "sweep-no-dir"],
)
def test_an_unusable_directory_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: object, message: str
) -> None:
    setup(tmp_path)  # type: ignore[operator]
    code, out, err = run_cli(capsys, "report", str(tmp_path))
    assert (code, out, len(err)) == (2, [], 1)
    assert err[0].startswith("error: " + message.format(d=tmp_path)), err[0]


def test_only_damaged_runs_is_an_error_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (write_run(tmp_path / "a", "fedavg", "alie", 0.1, 1) / "summary.json").unlink()
    code, _, err = run_cli(capsys, "report", str(tmp_path / "missing"))
    assert code == 2 and err == [f"error: report: {str(tmp_path / 'missing')!r} is not a directory"]
    code, _, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 2 and len(err) == 1 and err[0].endswith("; skipped: a: no summary.json")


def test_a_sweep_cell_not_run_yet_is_a_skipped_note(tmp_path: Path) -> None:
    write_run(tmp_path / "cells" / "0", "fedavg", "alie", 0.1, 1)
    cells = [
        {"id": "0", "dir": "cells/0", "coordinates": {"seed": 1}, "status": "finished"},
        {"id": "1", "dir": "cells/1", "coordinates": {"seed": 2}, "status": "pending"},
    ]
    atomic_write_json(tmp_path / "sweep.json", {"command": "c", "fields": ["seed"], "cells": cells})
    runs = collect(tmp_path)
    assert [r.id for r in runs.runs] == ["cells/0"] and runs.skipped == ("1: not run (pending)",)


def test_a_run_from_before_status_was_recorded_counts_as_finished(tmp_path: Path) -> None:
    # Such a summary was written only at the end; its `rounds` says how many there were.
    run = write_run(tmp_path / "old", "fedavg", "alie", 0.1, 1)
    summary = json.loads((run / "summary.json").read_text())
    legacy = {k: v for k, v in summary.items() if k not in ("status", "last_round")}
    atomic_write_json(run / "summary.json", {**legacy, "rounds": 3})
    assert [r.id for r in collect(tmp_path).runs] == ["old"]
    atomic_write_json(run / "summary.json", {**legacy, "rounds": 4})
    with pytest.raises(
        ReportError, match="old: metrics.jsonl ends at round 3 but summary.json says 4"
    ):
        collect(tmp_path)

"""``build_report`` on a sweep directory: results files, tables, figures, determinism."""

from __future__ import annotations

import csv
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from fedshield.report import build_report
from tests.report._synthetic_runs import GRID, final_accuracy, write_sweep

OUTPUTS = ("report.md", "results.csv", "results.jsonl", "heatmap.png", "curves.png", "fraction.png")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = write_sweep(tmp_path_factory.mktemp("sweep"))
    assert build_report(directory) == directory / "report.md"
    return directory


def test_results_csv_has_one_row_per_cell_with_swept_fields_and_figures(sweep: Path) -> None:
    with (sweep / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(GRID) == 24
    assert list(rows[0])[:9] == [
        "run",
        "attack.malicious",
        "defense.aggregator",
        "attack.type",
        "defense",
        "attack",
        "malicious",
        "seed",
        "rounds",
    ]
    # Neither DP nor integrity is on in any run: no epsilon, no detection columns.
    assert not {"epsilon", "detection_precision", "detection_recall"} & set(rows[0])
    krum = rows[5]  # cell 005: krum, alie, 0.1, seed 2
    assert (krum["run"], krum["defense"], krum["attack"], krum["seed"]) == (
        "cells/005",
        "krum(num_byzantine=2)",
        "alie",
        "2",
    )
    assert float(krum["final_accuracy"]) == pytest.approx(final_accuracy("krum", "alie", 0.1, 2))
    assert float(krum["best_accuracy"]) == pytest.approx(0.72)  # the last round is the best
    assert float(krum["attack_success_rate"]) == pytest.approx(0.3)
    assert float(krum["wall_seconds"]) == 14.5
    assert float(krum["mean_round_seconds"]) == pytest.approx(3.0)  # rounds of 2, 3, 4 s
    assert float(krum["time_train_max"]) == pytest.approx(0.7)  # mean of 0.6, 0.7, 0.8
    assert float(krum["time_aggregate"]) == pytest.approx(0.004)


def test_results_jsonl_holds_the_same_records(sweep: Path) -> None:
    lines = (sweep / "results.jsonl").read_text().splitlines()
    with (sweep / "results.csv").open() as handle:
        header = next(csv.reader(handle))
    records = [json.loads(line) for line in lines]
    assert len(records) == 24 and all(list(r) == sorted(header) for r in records)
    assert records[23]["defense"] == "median" and records[23]["malicious"] == 0.3


def _table(report: str, title: str) -> list[list[str]]:
    block = report.split(f"### {title}\n\n", 1)[1].split("\n\n", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]


def test_report_tables_give_mean_and_std_over_seeds_with_the_best_in_bold(sweep: Path) -> None:
    report = (sweep / "report.md").read_text()
    low = _table(report, "malicious = 0.1")
    # fedavg, alie: seeds 1 and 2 end at 0.81 and 0.82: mean 0.815, sample std 0.00707.
    assert low[0] == ["fedavg", "**0.8150 ± 0.0071**", "**0.8650 ± 0.0071**"]
    assert low[1] == ["krum(num_byzantine=2)", "0.7150 ± 0.0071", "0.7650 ± 0.0071"]
    assert low[2] == ["median", "0.7650 ± 0.0071", "0.8150 ± 0.0071"]
    high = _table(report, "malicious = 0.3")
    assert high[2] == ["median", "0.5650 ± 0.0071", "0.7150 ± 0.0071"]
    assert "```\nfedshield sweep grid.toml\n```" in report
    assert "| tensorflow | 2.15.1 |" in report
    for png in ("heatmap.png", "curves.png", "fraction.png"):
        assert f"]({png})" in report


def test_attack_success_table_puts_the_lowest_rate_in_bold(sweep: Path) -> None:
    report = (sweep / "report.md").read_text()
    success = report.split("## Attack success rate after the last round", 1)[1]
    block = success.split("### malicious = 0.1\n\n", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()[2:]]
    assert rows == [
        ["fedavg", "0.9000 ± 0.0000", "0.9000 ± 0.0000"],
        ["krum(num_byzantine=2)", "**0.3000 ± 0.0000**", "**0.3000 ± 0.0000**"],
        ["median", "0.6000 ± 0.0000", "0.6000 ± 0.0000"],
    ]


def test_report_shows_breakdown_points_and_what_each_defense_costs(sweep: Path) -> None:
    report = (sweep / "report.md").read_text()
    assert "| krum(num_byzantine=2) | n >= 2f+3 | 10 | 0.30 |" in report
    assert "| median | none | 10 | 0.50 |" in report
    assert "| fedavg | none | 10 | 0.00 |" in report
    cost = report.split("## What each defense costs", 1)[1]
    # round 3000 ms, train_max 700, train_mean 400, attack 1, integrity 0, aggregate 4, eval 20
    assert "| krum(num_byzantine=2) | 8 | 3000.0 ± 0.0 | 700.00 ± 0.00 | 400.00 ± 0.00 |" in cost
    assert "| 1.00 ± 0.00 | 0.00 ± 0.00 | 4.00 ± 0.00 | 20.00 ± 0.00 |" in cost


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_figures_are_drawn_with_one_panel_per_fraction_and_attack(sweep: Path) -> None:
    # heatmap: 2 fraction panels side by side of 2 attacks x 3 defenses
    assert _png_size(sweep / "heatmap.png") == (830, 315)
    # curves: 2 rows (fractions) x 2 columns (attacks); fraction: 1 row x 2 attacks
    assert _png_size(sweep / "curves.png") == (940, 680)
    assert _png_size(sweep / "fraction.png") == (1020, 460)
    for png in ("heatmap.png", "curves.png", "fraction.png"):
        pixels = imread(sweep / png)
        assert (sweep / png).stat().st_size > 10_000
        assert float(np.std(pixels)) > 0.05  # drawn, not blank


def test_regenerating_gives_the_same_bytes_even_in_another_directory(
    sweep: Path, tmp_path: Path
) -> None:
    before = {name: (sweep / name).read_bytes() for name in OUTPUTS}
    build_report(sweep)
    assert {name: (sweep / name).read_bytes() for name in OUTPUTS} == before
    moved = tmp_path / "sweep"
    shutil.copytree(sweep, moved)
    for name in OUTPUTS:
        (moved / name).unlink()
    build_report(moved)
    assert {name: (moved / name).read_bytes() for name in OUTPUTS} == before

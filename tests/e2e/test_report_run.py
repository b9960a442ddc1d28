"""A real run writes TensorBoard events and the time split; `fedshield report` reads it."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

from common.results import read_jsonl
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario
from tests.cli_helpers import run_cli

pytestmark = pytest.mark.e2e


def test_a_run_writes_events_and_time_split_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = ["data.num_clients=3", "rounds=2", "train.local_epochs=1", "simulation.num_cpus=1"]
    scenario = load_scenario("quickstart", [*overrides, f'output="{tmp_path}"'])
    run_dir = run_scenario(scenario).run_dir
    rows = read_jsonl(run_dir / "metrics.jsonl")

    for row in rows[1:]:
        split = row["time"]
        assert set(split) == {
            "train_max",
            "train_mean",
            "attack",
            "integrity",
            "aggregate",
            "evaluate",
        }
        # The clients timed their own work and said so; the slowest bounds the mean, and the
        # server's round (which waited for it) took longer than that work.
        assert 0.0 < split["train_mean"] <= split["train_max"] < row["seconds"]
        assert all(split[k] >= 0.0 for k in ("attack", "integrity", "aggregate", "evaluate"))
    assert set(rows[0]["time"]) == {"evaluate"}

    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    board = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    board.Reload()
    accuracy = [
        (e.step, float(make_ndarray(e.tensor_proto))) for e in board.Tensors("eval/accuracy")
    ]
    assert [step for step, _ in accuracy] == [0, 1, 2]
    assert all(
        math.isclose(value, row["accuracy"], rel_tol=1e-6)
        for (_, value), row in zip(accuracy, rows, strict=True)
    )
    assert [e.step for e in board.Tensors("time/aggregate")] == [1, 2]

    code, out, err = run_cli(capsys, "report", str(tmp_path))
    assert code == 0 and err == [], err
    with (tmp_path / "results.csv").open() as handle:
        (record,) = list(csv.DictReader(handle))
    assert float(record["final_accuracy"]) == rows[-1]["accuracy"]
    assert float(record["time_train_max"]) > 0.0
    assert "| fedavg | 1 |" in (tmp_path / "report.md").read_text()  # the cost table

"""Sweeps end to end: the smoke grid, a Ctrl-C part-way and its restart, warm-session equality.

Each session is tiny (3 clients, 2 rounds, 1 local epoch); cells of one grid share a session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from common.results import read_json, read_jsonl
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario
from tests.cli_helpers import run_cli
from tests.e2e._processes import REPO

pytestmark = pytest.mark.e2e

TINY = {
    "rounds": 2,
    "data.num_clients": 3,
    "train.local_epochs": 1,
    "simulation.num_cpus": 1,
    "attack.malicious": 1,
}


def _grid(path: Path, sweep: str) -> Path:
    overrides = "".join(f'"{k}" = {json.dumps(v)}\n' for k, v in TINY.items())
    path.write_text(f'base = "quickstart"\n[overrides]\n{overrides}{sweep}')
    return path


def _cells(out: Path) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = read_json(out / "sweep.json")["cells"]
    return cells


def test_smoke_grid_end_to_end_and_a_rerun_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "smoke"
    code, stdout, _ = run_cli(capsys, "sweep", "smoke", "--out", str(out))
    assert code == 0
    assert stdout[0].startswith("sweep smoke: 4 cells in 1 sessions")
    assert [line.split(":")[0] for line in stdout[1:5]] == [
        "cell 1/4 (defense.aggregator=fedavg attack.type=sign_flip seed=1)",
        "cell 2/4 (defense.aggregator=fedavg attack.type=gaussian seed=1)",
        "cell 3/4 (defense.aggregator=median attack.type=sign_flip seed=1)",
        "cell 4/4 (defense.aggregator=median attack.type=gaussian seed=1)",
    ]
    assert stdout[-1].startswith("done: 4 finished, 0 invalid skipped")
    index = read_json(out / "sweep.json")
    assert index["command"] == f"fedshield sweep smoke --out {out}"
    assert index["fields"] == ["defense.aggregator", "attack.type", "seed"]
    final = {}
    for cell in index["cells"]:
        assert (cell["status"], cell["group"]) == ("finished", 0)
        run_dir = out / cell["dir"]
        scenario = read_json(run_dir / "scenario.json")
        assert scenario["defense"]["aggregator"] == cell["coordinates"]["defense.aggregator"]
        assert scenario["attack"]["type"] == cell["coordinates"]["attack.type"]
        assert [r["round"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [0, 1, 2]
        summary = read_json(run_dir / "summary.json")
        assert summary["status"] == "finished" and summary["malicious_clients"] == [1]  # seed 1
        assert (run_dir / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
        coordinates = cell["coordinates"]
        final[coordinates["defense.aggregator"], coordinates["attack.type"]] = summary[
            "final_accuracy"
        ]
    # Each cell really ran its own defense and attack: the median shrugs off the one attacker
    # of three that drags FedAvg down, under both attacks.
    for attack in ("sign_flip", "gaussian"):
        assert final["median", attack] > final["fedavg", attack] + 0.1
        assert final["median", attack] > 0.8
    stamps = {c["id"]: (out / c["dir"] / "summary.json").stat().st_mtime_ns for c in index["cells"]}

    code, stdout, _ = run_cli(capsys, "sweep", "smoke", "--out", str(out))
    assert code == 0
    assert "4 already finished, 0 to run" in stdout[0]
    assert not [line for line in stdout if line.startswith("cell ")]
    assert stamps == {
        c["id"]: (out / c["dir"] / "summary.json").stat().st_mtime_ns for c in _cells(out)
    }


def test_a_sweep_stopped_by_ctrl_c_resumes_where_it_stopped(tmp_path: Path) -> None:
    grid = _grid(
        tmp_path / "g.toml",
        '"attack.type" = "sign_flip"\n[sweep]\n'
        '"defense.aggregator" = ["fedavg", "median", "trimmed_mean", "no_such_rule"]\nseed = [1]\n',
    )
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "fedshield.cli", "sweep", str(grid), "--out", str(out)]
    command.append("--skip-invalid")  # the unknown rule is listed, recorded and left out
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    sweep = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    assert sweep.stdout is not None
    for line in sweep.stdout:
        if line.startswith("cell 1/4"):
            break
    os.killpg(sweep.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 130
    assert "invalid: cell 4/4 (defense.aggregator=no_such_rule seed=1): " in stderr
    assert "interrupted by SIGINT; 1 of 4 cells finished; rerun the same command" in stderr
    cells = _cells(out)
    assert [c["status"] for c in cells][0] == "finished"
    assert {c["status"] for c in cells[1:3]} <= {"interrupted", "pending"}
    assert (cells[3]["status"], cells[3]["group"]) == ("invalid", -1)
    first = (out / cells[0]["dir"] / "summary.json").read_bytes()

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert "1 already finished, 2 to run" in lines[0]
    assert [line.split(" (")[0] for line in lines if line.startswith("cell ")] == [
        "cell 2/4",
        "cell 3/4",
    ]
    cells = _cells(out)
    assert [c["status"] for c in cells] == ["finished"] * 3 + ["invalid"]
    assert (out / cells[0]["dir"] / "summary.json").read_bytes() == first
    for cell in cells[:3]:  # the half-done attempt left no rounds behind
        rows = read_jsonl(out / cell["dir"] / "metrics.jsonl")
        assert [r["round"] for r in rows] == [0, 1, 2]


def _without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in r.items() if k not in ("seconds", "wall_seconds", "time")} for r in rows
    ]


def test_two_cells_in_one_session_equal_two_separate_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first cell leaves everything a warm actor could carry over: a compiled model with
    # momentum in its optimizer, a poisoned shard of the malicious client, another seed's data
    # split and partition, another rule. The second cell must not see any of it.
    cases = {
        "first": {"defense.aggregator": "fedavg", "attack.type": "label_flip", "seed": 7},
        "second": {"defense.aggregator": "median", "attack.type": "sign_flip", "seed": 3},
    }
    sweep = "".join(
        "[[sweep.cases]]\n" + "".join(f'"{k}" = {json.dumps(v)}\n' for k, v in case.items())
        for case in cases.values()
    )
    out = tmp_path / "warm"
    code, _, _ = run_cli(capsys, "sweep", str(_grid(tmp_path / "g.toml", sweep)), "--out", str(out))
    assert code == 0
    warm = _cells(out)
    assert [c["group"] for c in warm] == [0, 0]  # one session served both
    for cell, case in zip(warm, cases.values(), strict=True):
        settings = {**TINY, **case, "output": str(tmp_path / "cold")}
        scenario = load_scenario(
            "quickstart", [f"{k}={json.dumps(v)}" for k, v in settings.items()]
        )
        cold = run_scenario(scenario).run_dir
        warm_dir = out / cell["dir"]
        warm_rows = read_jsonl(warm_dir / "metrics.jsonl")
        assert _without_timing(warm_rows) == _without_timing(read_jsonl(cold / "metrics.jsonl"))
        assert warm_rows[-1]["accuracy"] > warm_rows[0]["accuracy"]  # it trained
        warm_summary, cold_summary = (read_json(d / "summary.json") for d in (warm_dir, cold))
        assert _without_timing([warm_summary]) == _without_timing([cold_summary])

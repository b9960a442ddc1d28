"""Resume: a run SIGKILLed after round k and resumed ends with an uninterrupted run's metrics.

The adversary is the operator's machine: an OOM killer or a lost node kills the driver (and its
Ray processes) without warning, between any two writes. The run directory must then hold
everything the next round needs, and ``fedshield run --resume`` must go on as if nothing happened.
Centered clipping carries a centre from round to round, so a resume that lost the chain's state
would diverge from round k+1 on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e._processes import REPO, TINY_RUN, start_run

pytestmark = pytest.mark.e2e

STATEFUL = [
    "--set",
    "rounds=4",
    "--set",
    'defense.aggregator="centered_clipping"',
    "--set",
    "defense.params.radius=0.5",
]
VOLATILE = {"seconds", "time"}  # wall-clock time and its split, the only fields that differ


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


def _wait_for_line(path: Path, server_round: int, run: subprocess.Popen[str]) -> None:
    """Poll ``metrics.jsonl`` until round ``server_round`` is in it."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if path.exists() and f'"round": {server_round},' in path.read_text():
            return
        assert run.poll() is None, "the run ended before it was killed"
        time.sleep(0.05)
    raise AssertionError(f"round {server_round} never came")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "fedshield.cli", *args]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)


def test_a_run_killed_after_round_two_resumes_to_the_uninterrupted_metrics(tmp_path: Path) -> None:
    straight = _cli(
        "run", "quickstart", *TINY_RUN, *STATEFUL, "--set", f'output="{tmp_path / "a"}"'
    )
    assert straight.returncode == 0, straight.stderr
    (straight_dir,) = (tmp_path / "a").iterdir()

    run = start_run(tmp_path / "b", *STATEFUL)
    try:
        metrics = next(iter(_run_dirs(tmp_path / "b", run))) / "metrics.jsonl"
        _wait_for_line(metrics, 2, run)
        os.killpg(run.pid, signal.SIGKILL)  # the driver and every Ray process it started
        run.wait(timeout=30)
    finally:
        run.kill()
    (killed_dir,) = (tmp_path / "b").iterdir()
    assert not (killed_dir / "summary.json").exists()  # it never got to write one
    assert len(_rows(killed_dir)) < 5

    resumed = _cli("run", "--resume", str(killed_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr == ""
    assert f"files in {killed_dir}" in resumed.stdout
    assert _rows(killed_dir) == _rows(straight_dir)  # rounds 0-4, every figure
    summaries = [json.loads((d / "summary.json").read_text()) for d in (straight_dir, killed_dir)]
    for key in ("status", "last_round", "final_accuracy", "final_loss", "membership_inference"):
        assert summaries[1][key] == summaries[0][key], key


def _run_dirs(output: Path, run: subprocess.Popen[str]) -> list[Path]:
    """The run's directory, once it exists."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if output.exists() and (found := list(output.iterdir())):
            return found
        assert run.poll() is None, run.communicate()
        time.sleep(0.05)
    raise AssertionError("no run directory")

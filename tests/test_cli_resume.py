"""``fedshield run --resume``: refusals in one line, before Ray starts (the e2e test resumes).

The adversary is the operator pointing ``--resume`` at the wrong place: a directory without a
checkpoint, a run of another scenario, ``--set`` values that change the recorded scenario.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.results import atomic_write_json
from scenarios.loader import load_scenario
from server.checkpoint_state import CHECKPOINT_FILE, write_checkpoint
from tests.cli_helpers import run_cli


def _run_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "quickstart-seed42-x"
    scenario = load_scenario("quickstart", [f'output="{tmp_path}"'])
    atomic_write_json(run_dir / "scenario.json", scenario.model_dump(mode="json"))
    return run_dir


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run_cli(capsys, "run", *argv)
    assert code == 2 and out == [] and len(err) == 1, (code, out, err)
    return err[0]


def test_run_needs_a_scenario_or_resume(capsys: pytest.CaptureFixture[str]) -> None:
    assert _refused(capsys) == "error: run: give a scenario, or --resume RUN_DIR"


def test_a_directory_without_a_checkpoint_or_scenario(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert _refused(capsys, "--resume", str(tmp_path)).startswith(
        f"error: --resume: got '{tmp_path}'; cannot read {tmp_path}/scenario.json"
    )
    run_dir = _run_dir(tmp_path)
    line = _refused(capsys, "--resume", str(run_dir))
    assert line == (
        f"error: --resume: got '{run_dir}'; no {CHECKPOINT_FILE} in it (a run directory holds "
        "one once its first round is recorded)"
    )
    assert sorted(p.name for p in run_dir.iterdir()) == ["scenario.json"]  # nothing written


def test_a_changed_scenario_is_refused_naming_the_fields(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir = _run_dir(tmp_path)
    write_checkpoint(run_dir, {"round": 1, "weights": [np.zeros(2)]})
    line = _refused(capsys, "--resume", str(run_dir), "--set", "rounds=12", "--set", "seed=1")
    assert line == (
        f"error: --resume: {run_dir} ran another scenario (differing: rounds, seed); resume with "
        "the recorded scenario (no scenario argument, no --set)"
    )
    line = _refused(capsys, "quickstart", "--resume", str(run_dir))  # output differs
    assert "ran another scenario (differing: output)" in line


def test_a_corrupt_checkpoint_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir = _run_dir(tmp_path)
    (run_dir / CHECKPOINT_FILE).write_bytes(b"PK\x03\x04 not really")
    line = _refused(capsys, "--resume", str(run_dir))
    assert line.startswith(f"error: --resume: {run_dir}/{CHECKPOINT_FILE} is corrupt (")

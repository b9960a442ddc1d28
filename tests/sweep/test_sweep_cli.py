"""``fedshield sweep`` refuses an invalid grid in one line per bad cell, before Ray starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli

GRID = """\
base = "quickstart"
[overrides]
"attack.type" = "sign_flip"
"attack.malicious" = 1
[sweep]
"defense.params" = [{num_byzantine = 1}, {num_byzantine = 2}]
seed = [1]
[[sweep.cases]]
"defense.aggregator" = "krum"
[[sweep.cases]]
"defense.aggregator" = "bulyan"
"""


def test_invalid_cells_are_listed_with_their_coordinates_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    out = tmp_path / "sweep"
    code, stdout, stderr = run_cli(capsys, "sweep", str(grid), "--out", str(out))
    assert code == 2
    assert stdout == []
    assert stderr == [
        "invalid: cell 4/4 (defense.params={num_byzantine=2} seed=1 defense.aggregator=bulyan): "
        "defense.aggregator: bulyan needs at least 11 updates per round, but clients_per_round "
        "gives 10",
        "error: sweep: 1 of 4 cells are invalid (listed above); fix the grid or pass "
        "--skip-invalid to run the others",
    ]
    assert not (out / "sweep.json").exists()


def test_a_bad_grid_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('base = "quickstart"\n[sweep]\n"attack.type" = "none"\n')
    code, stdout, stderr = run_cli(capsys, "sweep", str(grid))
    assert (code, stdout) == (2, [])
    assert stderr == ["error: sweep.'attack.type': got 'none'; expected a non-empty list"]


@pytest.mark.parametrize("given_by", ["--ray-address", "RAY_ADDRESS"])
def test_on_a_cluster_invalid_cells_are_refused_before_attaching(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    given_by: str,
) -> None:
    # Nothing listens there: a sweep that attached before validating would fail on attaching.
    address = "127.0.0.1:1"
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    argv = ["sweep", str(grid), "--out", str(tmp_path / "sweep")]
    if given_by == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", address)
    else:
        argv += ["--ray-address", address]
    code, stdout, stderr = run_cli(capsys, *argv)
    assert (code, stdout) == (2, [])
    assert stderr[-1].startswith("error: sweep: 1 of 4 cells are invalid (listed above)")


@pytest.mark.parametrize("jobs", ["0", "-1", "two", "1.5"])
def test_a_bad_jobs_value_is_refused_by_name(
    jobs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        run_cli(capsys, "sweep", "smoke", "--out", str(tmp_path), "--jobs", jobs)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"fedshield sweep: error: argument --jobs: got {jobs!r}; expected a whole number >= 1"
    )


def test_jobs_on_a_cluster_is_refused_before_attaching(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", "smoke", "--out", str(tmp_path / "s"), "--jobs", "2"]
    code, stdout, stderr = run_cli(capsys, *argv, "--ray-address", "127.0.0.1:1")
    assert (code, stdout) == (2, [])
    assert stderr == [
        "error: --jobs: got 2; on a Ray cluster (--ray-address or $RAY_ADDRESS) the cluster's "
        "actors decide how many groups run at once, so leave --jobs out"
    ]


def _child_processes() -> list[int]:
    """This process's live children (Linux /proc)."""
    tasks = Path(f"/proc/{os.getpid()}/task").iterdir()
    return [int(pid) for task in tasks for pid in (task / "children").read_text().split()]


def test_with_jobs_an_invalid_grid_is_refused_and_its_early_processes_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --jobs starts its group processes before it validates; an invalid grid must end them.
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    before = set(_child_processes())
    argv = ["sweep", str(grid), "--out", str(tmp_path / "s"), "--jobs", "2"]
    code, stdout, stderr = run_cli(capsys, *argv)
    assert (code, stdout) == (2, [])
    assert stderr[-1].startswith("error: sweep: 1 of 4 cells are invalid (listed above)")
    assert set(_child_processes()) <= before

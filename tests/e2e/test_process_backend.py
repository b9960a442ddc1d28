"""``simulation.backend = "process"``: Flower's engine with the ClientApp in the driver, no Ray.

The claim is equivalence, so the test compares against the Ray backend: the same scenario
trains bit-identical weights and records the same injected faults; and a sweep cut over two
processes (``--jobs 2``) gives every cell exactly what it gets in one session. Each run is its
own ``fedshield`` process (the process backend configures the driver's TensorFlow runtime).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.results import read_json, read_jsonl
from tests.e2e._processes import REPO, descendants, left_after, start_run, wait_for_round

pytestmark = pytest.mark.e2e

TINY = {
    "rounds": 3,
    "data.num_clients": 5,
    "train.local_epochs": 1,
    "simulation.num_cpus": 1,
    "attack.type": "sign_flip",
    "attack.malicious": 1,
}
TIMES = ("seconds", "time")
"""What differs from one run to the next: wall times and the per-round time split."""


def _fedshield(*argv: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "fedshield.cli", *argv],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _untimed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in TIMES} for row in rows]


def _run(tmp_path: Path, backend: str, faults: str) -> Path:
    output = tmp_path / backend
    sets = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in TINY.items()]
    sets += [f"simulation.backend={backend!r}", faults, f'output="{output}"']
    _fedshield("run", "quickstart", *[arg for s in sets for arg in ("--set", s)])
    (run_dir,) = output.iterdir()
    return run_dir


def test_the_process_backend_trains_the_weights_ray_trains_and_records_the_same_faults(
    tmp_path: Path,
) -> None:
    faults = "simulation.faults={crash=0.3}"  # seed 42 draws crashes in rounds 1 to 3
    ray, process = (_run(tmp_path, backend, faults) for backend in ("ray", "process"))

    # The resume checkpoint's arrays: the global model and the server's NumPy stream, which the
    # clients in the driver must leave as they found it.
    with np.load(ray / "resume.npz") as a, np.load(process / "resume.npz") as b:
        arrays = [k for k in a.files if k != "tree"]
        assert arrays and all(np.array_equal(a[k], b[k]) for k in arrays)
    ray_rows, process_rows = (read_jsonl(d / "metrics.jsonl") for d in (ray, process))
    assert sum(r["num_failures"] for r in ray_rows[1:]) > 0  # the faults did happen
    # The server's loss is summed by the driver's TensorFlow, sized to one client's CPUs under
    # the process backend: equal to the last few bits, not bit for bit (docs/simulation.md).
    for r, p in zip(ray_rows, process_rows, strict=True):
        assert p.pop("loss") == pytest.approx(r.pop("loss"), rel=1e-6)
    assert _untimed(process_rows) == _untimed(ray_rows)


def _grid(tmp_path: Path, **changes: Any) -> Path:
    """A 4-cell grid of the tiny scenario on the process backend (2 rules x 2 seeds)."""
    settings = {**TINY, **changes}
    overrides = "".join(f'"{k}" = {v!r}\n'.replace("'", '"') for k, v in settings.items())
    grid = tmp_path / "g.toml"
    grid.write_text(
        f'base = "quickstart"\n[overrides]\n{overrides}"simulation.backend" = "process"\n'
        '[sweep]\n"defense.aggregator" = ["fedavg", "median"]\nseed = [1, 2]\n'
    )
    return grid


def test_a_sweep_over_two_processes_gives_every_cell_what_one_session_gives(
    tmp_path: Path,
) -> None:
    grid = _grid(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    _fedshield("sweep", str(grid), "--out", str(one))
    lines = _fedshield("sweep", str(grid), "--out", str(two), "--jobs", "2")

    assert lines[0].startswith("sweep g: 4 cells in 1 sessions (2 at once)")
    cells = read_json(two / "sweep.json")["cells"]
    assert [c["status"] for c in cells] == ["finished"] * 4
    for cell in cells:
        rows = [read_jsonl(out / cell["dir"] / "metrics.jsonl") for out in (one, two)]
        assert [r["round"] for r in rows[1]] == [0, 1, 2, 3]
        assert _untimed(rows[1]) == _untimed(rows[0])


def test_ctrl_c_stops_a_process_backend_run_in_one_line(tmp_path: Path) -> None:
    # The clients train in the driver's engine thread: Ctrl-C must still end the run at once,
    # in one line, with the shell's code, the rounds before it kept and no process left behind.
    run = start_run(tmp_path, "--set", "rounds=50", "--set", 'simulation.backend="process"')
    try:
        wait_for_round(run, 2)
        owned = descendants(run.pid)
        os.killpg(run.pid, signal.SIGINT)
        _, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 130
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted by SIGINT after round "), err
    (run_dir,) = tmp_path.iterdir()
    summary = read_json(run_dir / "summary.json")
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert summary["status"] == "interrupted" and 2 <= summary["last_round"] < 50
    assert [r["round"] for r in rows] == list(range(summary["last_round"] + 1))
    assert left_after(owned, 5) == set()


def _rows_written(sweep_dir: Path) -> int:
    """The most metrics rows any cell of the sweep has written so far."""
    files = sweep_dir.glob("cells/*/metrics.jsonl")
    return max((len(f.read_text().splitlines()) for f in files), default=0)


def test_ctrl_c_stops_a_sweep_over_forked_processes_and_the_same_command_finishes_it(
    tmp_path: Path,
) -> None:
    # With --jobs 2 the group processes are forked from the sweep (fedshield/sweep/forked.py)
    # and lead sessions of their own: the terminal's Ctrl-C reaches the sweep, which passes it
    # on. Every process must end, with one line and the shell's code, and the same command then
    # runs exactly the cells that had not finished.
    grid, out = _grid(tmp_path, rounds=12), tmp_path / "s"
    command = [sys.executable, "-m", "fedshield.cli", "sweep", str(grid), "--out", str(out)]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    sweep = subprocess.Popen(
        [*command, "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,  # a terminal's foreground job: its own process group
    )
    try:
        deadline = time.monotonic() + 240
        while _rows_written(out) < 3 and sweep.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # until a cell has recorded round 2 of 12: cells are in flight
        owned = descendants(sweep.pid)
        # Forked, not started afresh: a child's command line is the sweep's own.
        commands = {Path(f"/proc/{pid}/cmdline").read_bytes() for pid in {sweep.pid, *owned}}
        os.killpg(sweep.pid, signal.SIGINT)
        _, err = sweep.communicate(timeout=60)
    finally:
        sweep.kill()
    assert len(owned) == 2 and len(commands) == 1  # the two group processes, forked; no Ray
    assert sweep.returncode == 130
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted by SIGINT; "), err
    assert left_after(owned, 5) == set()
    statuses = [c["status"] for c in read_json(out / "sweep.json")["cells"]]
    assert "interrupted" in statuses
    done = statuses.count("finished")

    lines = _fedshield("sweep", str(grid), "--out", str(out), "--jobs", "2")
    assert lines[0].startswith(
        f"sweep g: 4 cells in 1 sessions (2 at once), {done} already finished, {4 - done} to run"
    )
    cells = read_json(out / "sweep.json")["cells"]
    assert [c["status"] for c in cells] == ["finished"] * 4
    for cell in cells:
        rows = read_jsonl(out / cell["dir"] / "metrics.jsonl")
        assert [r["round"] for r in rows] == list(range(13))

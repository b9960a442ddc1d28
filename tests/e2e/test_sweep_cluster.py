"""A sweep on a Ray cluster runs its groups side by side, and finds what a sweep without one finds.

Two groups: integrity is on with seed-derived keys, so each seed's clients trust another key
and get their own session (``fedshield/sweep/plan.py:session_key``); seed 1 has two cells, run
one after another in its session. On a 2-CPU head with 1-CPU clients both groups run at once,
each a child process with one client actor, each its own job on the head. Had the two groups
shared one trust anchor, the clients of one of them would refuse every broadcast.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from common.results import read_json, read_jsonl
from tests.cli_helpers import run_cli
from tests.e2e._processes import REPO
from tests.e2e._ray_head import probe

pytestmark = pytest.mark.e2e

GRID = """\
base = "quickstart"
[overrides]
rounds = 2
"data.num_clients" = 3
"train.local_epochs" = 1
"simulation.num_cpus" = 1
"attack.type" = "sign_flip"
"attack.malicious" = 1
"integrity.enabled" = true
[[sweep.cases]]
seed = 1
"defense.aggregator" = "fedavg"
[[sweep.cases]]
seed = 1
"defense.aggregator" = "median"
[[sweep.cases]]
seed = 2
"defense.aggregator" = "median"
"""

TIMING = ("seconds", "wall_seconds", "time")


def _without_timing(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in TIMING}


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without times and without the ledger's head, whose chain covers the hash of
    ``scenario.json``, which names the sweep's directory (the models are compared instead)."""
    integrity = {k: v for k, v in summary["integrity"].items() if not k.startswith("ledger_head")}
    return {**_without_timing(summary), "integrity": integrity}


def _global_models(run_dir: Path) -> list[tuple[int, str]]:
    """The digest of every round's global model, as the ledger records it."""
    return [(e["round"], e["global_digest"]) for e in read_jsonl(run_dir / "ledger.jsonl")]


def test_a_sweep_on_a_cluster_runs_groups_at_once_with_the_same_metrics(
    tmp_path: Path, ray_head: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    address, env = ray_head
    grid = tmp_path / "g.toml"
    grid.write_text(GRID)
    before = set(probe(env, address)["drivers"])

    # From another directory: Ray puts the driver's directory on the workers' path.
    on_cluster, cwd = tmp_path / "cluster", tmp_path / "elsewhere"
    cwd.mkdir()
    command = [sys.executable, "-m", "fedshield.cli", "sweep", str(grid), "--out", str(on_cluster)]
    sweep = subprocess.Popen(
        [*command, "--ray-address", address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    out, err = sweep.communicate(timeout=900)

    assert sweep.returncode == 0, err
    check, header, *lines = out.splitlines()
    assert check.startswith(f"cluster {address}: a worker on ")
    assert check.endswith("and reads digits (1437 training examples)")
    assert header.startswith("sweep g: 3 cells in 2 sessions (2 at once), 0 already finished")
    cell_lines = sorted(line.split(" (")[0] for line in lines if line.startswith("cell "))
    assert cell_lines == ["cell 1/3", "cell 2/3", "cell 3/3"]
    assert lines[-1].startswith("done: 3 finished, 0 invalid skipped")
    index = read_json(on_cluster / "sweep.json")
    assert [(c["status"], c["group"]) for c in index["cells"]] == [
        ("finished", 0),
        ("finished", 0),
        ("finished", 1),
    ]
    # The two sessions overlapped, each its own job (driver) on the head, besides the sweep's
    # own attachment for the start-up check.
    first, second = index["sessions"]
    assert (first["group"], second["group"]) == (0, 1)
    assert second["started"] < first["ended"] and first["started"] < second["ended"]
    after = probe(env, address)
    new_drivers = set(after["drivers"]) - before - {after["self"]}
    assert sweep.pid in new_drivers and len(new_drivers) == 3

    # The same grid without an address: one private Ray, one group after the other.
    here = tmp_path / "here"
    code, stdout, _ = run_cli(capsys, "sweep", str(grid), "--out", str(here))
    assert code == 0
    assert stdout[0].startswith("sweep g: 3 cells in 2 sessions (1 at once)")
    serial = read_json(here / "sweep.json")["sessions"]
    assert serial[0]["ended"] <= serial[1]["started"]
    _assert_same_cells(index["cells"], on_cluster, here)


def _assert_same_cells(cells: list[dict[str, Any]], on_cluster: Path, here: Path) -> None:
    """Every cell trained, with the same metrics, summary and models in both sweeps."""
    for cell in cells:
        cluster_dir, here_dir = on_cluster / cell["dir"], here / cell["dir"]
        rows = read_jsonl(cluster_dir / "metrics.jsonl")
        assert [r["round"] for r in rows] == [0, 1, 2]
        assert rows[-1]["accuracy"] > rows[0]["accuracy"]  # it trained
        assert [_without_timing(r) for r in rows] == [
            _without_timing(r) for r in read_jsonl(here_dir / "metrics.jsonl")
        ]
        summaries = [read_json(d / "summary.json") for d in (cluster_dir, here_dir)]
        assert _comparable(summaries[0]) == _comparable(summaries[1])
        assert summaries[0]["integrity"]["ledger_verified"] is True
        # Bit for bit the same global model after every round.
        assert _global_models(cluster_dir) == _global_models(here_dir)
        assert [r for r, _ in _global_models(cluster_dir)] == [0, 1, 2]

"""``sweep.json`` and what a restart finds done: a cell's own files decide, not the index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import ConfigError
from common.results import atomic_write_json
from fedshield.sweep.grid import load_grid
from fedshield.sweep.index import SweepIndex, fresh_run_dir
from fedshield.sweep.plan import plan_grid

GRID = """\
base = "quickstart"
[overrides]
rounds = 1
"attack.type" = "sign_flip"
"attack.malicious" = 1
[sweep]
"defense.aggregator" = ["median", "bulyan"]
seed = [1, 2]
[[sweep.cases]]
"defense.params" = {}
[[sweep.cases]]
"defense.params" = {num_byzantine = 2}
"""


def _index(tmp_path: Path) -> SweepIndex:
    grid_path = tmp_path / "g.toml"
    grid_path.write_text(GRID)
    grid = load_grid(str(grid_path))
    sweep_dir = tmp_path / "sweep"
    plan = plan_grid(grid, sweep_dir)
    return SweepIndex(sweep_dir, "fedshield sweep g.toml", str(grid_path), grid.fields, plan)


def _finish(index: SweepIndex, position: int, status: str = "finished") -> Path:
    """Write the files a run leaves, as the cell at ``position`` would."""
    item = index.plan.cells[position]
    assert item.scenario is not None
    run_dir = index.run_dir(item)
    fresh_run_dir(run_dir)
    atomic_write_json(run_dir / "scenario.json", item.scenario.model_dump(mode="json"))
    atomic_write_json(run_dir / "summary.json", {"status": status, "final_accuracy": 0.5})
    return run_dir


def test_the_index_lists_every_cell_with_its_coordinates_and_status(tmp_path: Path) -> None:
    index = _index(tmp_path)
    index.write()
    document = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert document["command"] == "fedshield sweep g.toml"
    assert document["fields"] == ["defense.aggregator", "seed", "defense.params"]
    cells = document["cells"]
    assert len(cells) == 8
    # Median takes no parameters, so its num_byzantine case is invalid; Bulyan with f = 2 needs
    # 11 > 10 updates. Invalid cells are in group -1 and carry their error.
    statuses = [(c["coordinates"]["defense.aggregator"], c["status"], c["group"]) for c in cells]
    assert statuses == [
        ("median", "pending", 0),
        ("median", "invalid", -1),
        ("median", "pending", 0),
        ("median", "invalid", -1),
        ("bulyan", "pending", 0),
        ("bulyan", "invalid", -1),
        ("bulyan", "pending", 0),
        ("bulyan", "invalid", -1),
    ]
    assert "num_byzantine" in cells[1]["error"]
    assert all(c["dir"] == f"cells/{c['id']}" for c in cells)
    assert cells[0]["coordinates"] == {
        "defense.aggregator": "median",
        "seed": 1,
        "defense.params": {},
    }


def test_a_restart_skips_finished_cells_and_reruns_the_rest(tmp_path: Path) -> None:
    index = _index(tmp_path)
    _finish(index, 0)
    _finish(index, 2, status="interrupted")
    (index.run_dir(index.plan.cells[4])).mkdir(parents=True)  # started, nothing written
    restarted = _index(tmp_path)
    assert [c.cell.index for c in restarted.to_run()] == [2, 4, 6]
    assert restarted.count("finished") == 1 and restarted.count("invalid") == 4
    restarted.set(restarted.plan.cells[2], "failed", "RoundsFailedError: no round")
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["cells"][2]
    assert (saved["status"], saved["error"]) == ("failed", "RoundsFailedError: no round")


def test_a_finished_run_of_another_scenario_is_never_overwritten(tmp_path: Path) -> None:
    # The base changed under a finished cell (same coordinates, another learning rate): a
    # restart refuses rather than silently replacing a result.
    index = _index(tmp_path)
    run_dir = _finish(index, 0)
    stored = json.loads((run_dir / "scenario.json").read_text())
    stored["train"]["learning_rate"] = 0.5
    atomic_write_json(run_dir / "scenario.json", stored)
    with pytest.raises(ConfigError, match="holds a finished run of a different scenario"):
        _index(tmp_path)


def test_a_run_stored_before_a_setting_was_added_still_counts_as_finished(
    tmp_path: Path,
) -> None:
    # An upgrade added a section with defaults (here: the run predates `robustness`): the
    # stored scenario, read with today's schema, is the one the grid asks for.
    index = _index(tmp_path)
    run_dir = _finish(index, 0)
    stored = json.loads((run_dir / "scenario.json").read_text())
    del stored["robustness"]
    atomic_write_json(run_dir / "scenario.json", stored)
    assert _index(tmp_path).status[index.plan.cells[0].cell.id] == "finished"


def test_a_fresh_run_dir_drops_a_half_done_attempt(tmp_path: Path) -> None:
    run_dir = tmp_path / "cells" / "a"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text('{"round": 0}\n')
    fresh_run_dir(run_dir)
    assert run_dir.is_dir() and list(run_dir.iterdir()) == []

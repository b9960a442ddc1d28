"""On a cluster, groups run side by side as far as its actors allow, and one at a time otherwise.

The scheduler (:class:`fedshield.sweep.concurrent.GroupRunner`) is exercised with real child
processes that speak the group protocol of :mod:`fedshield.sweep.group` without Ray: each
"cell" waits ``CELL_S`` seconds (or until a SIGINT) and reports. The real group process, on a
real Ray head, is ``tests/e2e/test_sweep_cluster.py``. Concurrency is shown by the recorded
start and end of each session, never by how fast anything ran.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from fedshield.sweep.concurrent import (
    GroupJob,
    GroupRunner,
    local_jobs,
    now,
    plan_jobs,
    prewarmed,
)
from fedshield.sweep.execute import Progress, _record
from fedshield.sweep.grid import load_grid
from fedshield.sweep.group import CellResult
from fedshield.sweep.index import SweepIndex
from fedshield.sweep.plan import PlannedCell, plan_grid

GRID = """\
base = "quickstart"
[overrides]
rounds = 1
[sweep]
"data.num_clients" = [10, 12]
seed = [1, 2]
"""

# A group process without Ray: the first cell takes CELL_S seconds, the others LATER_S; a SIGINT
# ends the cell in flight as interrupted; it ends LINGER_S after its last cell. It echoes its pool
# size and address in the summary.
CHILD = """
import json, os, signal, sys, time
spec = json.load(sys.stdin)
events = os.fdopen(int(sys.argv[1]), "w")
stopped = []
signal.signal(signal.SIGINT, lambda signum, frame: stopped.append(signum))
if os.environ.get("CHILD_EXIT"):
    sys.exit(int(os.environ["CHILD_EXIT"]))
for k, cell in enumerate(spec["cells"]):
    if k and os.environ.get("MARKS"):  # tells the test that this later cell has started
        open(os.path.join(os.environ["MARKS"], cell["id"]), "w").close()
    deadline = time.monotonic() + float(os.environ["CELL_S" if k == 0 else "LATER_S"])
    while time.monotonic() < deadline and not stopped:
        time.sleep(0.01)
    summary = {"status": "interrupted" if stopped else "finished", "final_accuracy": 0.5,
               "wall_seconds": 0.0, "pool_size": spec["pool_size"], "address": spec["address"]}
    events.write(json.dumps({"cell": cell["id"], "error": None, "summary": summary}) + "\\n")
    events.flush()
    if stopped:
        break
time.sleep(float(os.environ.get("LINGER_S", "0")))  # an engine that takes its time to stop
events.write(json.dumps({"stops": {"signals": stopped, "engine_errors": []}}) + "\\n")
"""


class Recorder:
    """The sweep's side: the cells as reported and each session's start and end."""

    def __init__(self) -> None:
        self.cells: list[tuple[PlannedCell, CellResult]] = []
        self.sessions: dict[int, tuple[str, str]] = {}

    def record(self, item: PlannedCell, result: CellResult) -> None:
        self.cells.append((item, result))

    def session(self, group: int, started: str, ended: str) -> None:
        self.sessions[group] = (started, ended)

    def runner(self) -> GroupRunner:
        command = (sys.executable, "-c", CHILD)
        return GroupRunner("10.0.0.1:6379", False, self.record, self.session, command)


def _groups(tmp_path: Path) -> tuple[list[list[PlannedCell]], Path]:
    (tmp_path / "g.toml").write_text(GRID)
    plan = plan_grid(load_grid(str(tmp_path / "g.toml")), tmp_path / "out")
    return plan.groups, tmp_path / "out"


def _run_dir(item: PlannedCell) -> Path:
    return Path("/nonexistent") / item.cell.id


@pytest.fixture(autouse=True)
def _cell_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELL_S", "0.3")
    monkeypatch.setenv("LATER_S", "0.3")


def test_groups_run_side_by_side_when_the_cluster_holds_an_actor_for_each(
    tmp_path: Path,
) -> None:
    groups, _ = _groups(tmp_path)
    assert [len(g) for g in groups] == [2, 2]  # 10 and 12 clients: two sessions of two seeds
    at_once, jobs = plan_jobs(groups, _run_dir, slots=[4, 4])
    assert (at_once, [j.pool_size for j in jobs]) == (2, [2, 2])
    seen = Recorder()
    stops = seen.runner().run(jobs, at_once)

    assert (stops.signals, stops.engine_errors) == ([], [])
    (start0, end0), (start1, end1) = seen.sessions[0], seen.sessions[1]
    assert start1 < end0 and start0 < end1  # the two sessions overlapped
    # Every cell reported once, each group's cells in grid order, with its share and address.
    for group in groups:
        mine = [(item, result) for item, result in seen.cells if item.group == group[0].group]
        assert [item.cell.id for item, _ in mine] == [c.cell.id for c in group]
        assert all(
            r.summary == {**r.summary, "pool_size": 2, "status": "finished"} for _, r in mine
        )
        assert all(r.summary and r.summary["address"] == "10.0.0.1:6379" for _, r in mine)


def test_groups_run_one_after_another_when_the_cluster_holds_one_actor(tmp_path: Path) -> None:
    groups, _ = _groups(tmp_path)
    at_once, jobs = plan_jobs(groups, _run_dir, slots=[1, 1])
    assert (at_once, [j.pool_size for j in jobs]) == (1, [1, 1])
    seen = Recorder()
    seen.runner().run(jobs, at_once)

    (_, end0), (start1, _) = seen.sessions[0], seen.sessions[1]
    assert end0 <= start1  # group 1 started once group 0 had ended
    assert [item.cell.id for item, _ in seen.cells] == [c.cell.id for g in groups for c in g]


def test_ctrl_c_stops_every_running_group_and_starts_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATER_S", "120")  # each group's second cell runs until stopped
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("MARKS", str(marks))
    groups, _ = _groups(tmp_path)
    at_once, jobs = plan_jobs(groups, _run_dir, slots=[2, 2])
    seen = Recorder()
    runner = seen.runner()

    def record(item: PlannedCell, result: CellResult) -> None:
        seen.record(item, result)
        if len(seen.cells) == 2:  # both groups are in their second cell: press Ctrl-C
            # A signal between a group's cells would stop it before its second cell starts
            # (nothing to report for that cell), so wait until both second cells have begun.
            deadline = time.monotonic() + 60
            while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)

    runner.record = record
    stops = runner.run(jobs, at_once)

    assert stops.signals == [signal.SIGINT]
    statuses = [(item.cell.index, r.summary and r.summary["status"]) for item, r in seen.cells]
    # Cells 0, 1 are group 0 and 2, 3 group 1: each finished its first and stopped its second.
    assert sorted(statuses) == [
        (0, "finished"),
        (1, "interrupted"),
        (2, "finished"),
        (3, "interrupted"),
    ]
    assert set(seen.sessions) == {0, 1}


def test_a_group_process_that_dies_fails_the_sweep_and_no_later_group_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHILD_EXIT", "3")
    groups, _ = _groups(tmp_path)
    at_once, jobs = plan_jobs(groups, _run_dir, slots=[1, 1])
    seen = Recorder()
    stops = seen.runner().run(jobs, at_once)

    assert [str(e) for e in stops.engine_errors] == ["group 0's process ended with exit code 3"]
    assert list(seen.sessions) == [0] and seen.cells == []


def test_jobs_cut_the_largest_group_until_there_are_as_many_parts_as_jobs(
    tmp_path: Path,
) -> None:
    groups, _ = _groups(tmp_path)  # two groups of two cells
    at_once, jobs = local_jobs(groups, _run_dir, 3)
    assert at_once == 3
    assert [[c.cell.index for c in j.cells] for j in jobs] == [[0], [1], [2, 3]]
    assert [j.group for j in jobs] == [0, 0, 1] and {j.pool_size for j in jobs} == {None}
    at_once, jobs = local_jobs(groups, _run_dir, 8)  # no more parts than cells
    assert (at_once, [len(j.cells) for j in jobs]) == (4, [1, 1, 1, 1])
    assert local_jobs(groups, _run_dir, 2) == (
        2,
        [GroupJob(g[0].group, g, [_run_dir(c) for c in g], None) for g in groups],
    )


def test_a_group_cut_in_parts_runs_on_the_processes_started_first_and_the_spare_ends(
    tmp_path: Path,
) -> None:
    groups, _ = _groups(tmp_path)
    at_once, jobs = local_jobs(groups[:1], _run_dir, 2)  # group 0's two cells, one per process
    seen = Recorder()
    with prewarmed(3, False, (sys.executable, "-c", CHILD)) as warm:
        runner = GroupRunner(None, False, seen.record, seen.session, warm=warm)
        stops = runner.run(jobs, at_once)
        assert len(warm) == 1  # two were used; the third is dismissed when the block ends
        spare = warm[0].process
    assert spare.returncode is not None
    assert (stops.signals, stops.engine_errors) == ([], [])
    assert sorted(item.cell.index for item, _ in seen.cells) == [0, 1]
    assert all(r.summary and r.summary["address"] is None for _, r in seen.cells)
    assert list(seen.sessions) == [0]  # one span for the group, over both parts


def test_the_closing_step_runs_once_the_last_cell_is_recorded_not_when_the_children_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Flower's engine takes up to a second to stop after a session's last cell; the sweep draws
    # its report meanwhile (execute.run_sweep passes Report.build as ``after_last``).
    monkeypatch.setenv("LINGER_S", "1.5")
    (tmp_path / "g.toml").write_text(GRID)
    grid = load_grid(str(tmp_path / "g.toml"))
    plan = plan_grid(grid, tmp_path / "out")
    index = SweepIndex(tmp_path / "out", "fedshield sweep g.toml", "g.toml", grid.fields, plan)
    progress = Progress(len(plan.cells), len(plan.cells), stream=io.StringIO())
    closed: list[str] = []
    record = partial(
        _record, index=index, progress=progress, after_last=lambda: closed.append(now())
    )
    seen = Recorder()
    at_once, jobs = plan_jobs(plan.groups, index.run_dir, slots=[4, 4])
    GroupRunner(None, False, record, seen.session, (sys.executable, "-c", CHILD)).run(jobs, at_once)

    assert index.count("finished") == 4
    assert len(closed) == 1  # once, after the fourth cell
    assert all(closed[0] < ended for _, ended in seen.sessions.values())  # both still running

"""``fedshield sweep``: run every cell of a grid, group by group, each group in one warm session.

The fixed cost of a simulation (Ray start, every actor importing TensorFlow and tracing its
model, shutdown) is paid once per group (:mod:`fedshield.sweep.plan`), not once per cell. On a
Ray cluster several groups run at once (:mod:`fedshield.sweep.concurrent`), and with ``--jobs N``
up to N sessions run at once on this machine. A signal stops the
cells in flight (their summaries say ``interrupted``) and the sweep exits with the shell's code;
the same command then resumes (:mod:`fedshield.sweep.index`).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TextIO

from common.errors import FedshieldError
from common.tf_runtime import size_blas
from fedshield.report import build_report
from fedshield.runner import Interrupted, Stops, check_backend, import_apps
from fedshield.sweep.concurrent import (
    GroupJob,
    GroupRunner,
    cluster_slots,
    local_jobs,
    now,
    plan_jobs,
    prewarmed,
)
from fedshield.sweep.forked import share_dataset
from fedshield.sweep.grid import load_grid
from fedshield.sweep.group import CellResult, EngineFailed, round_lines_of, run_group
from fedshield.sweep.index import SweepIndex
from fedshield.sweep.plan import PlannedCell, plan_grid


class SweepInterrupted(Interrupted):
    """A signal stopped the sweep; the cell in flight is ``interrupted``, the rest pending."""

    def __init__(self, signum: int, index: SweepIndex) -> None:
        super().__init__(signum, index.sweep_dir, None)
        name = signal.Signals(signum).name
        self.args = (
            f"interrupted by {name}; {index.count('finished')} of {len(index.status)} cells "
            f"finished; rerun the same command to resume (files in {index.sweep_dir})",
        )


@dataclass
class Progress:
    """One line per cell: ``cell k/N (coordinates): status, accuracy, time; ETA``."""

    total: int
    to_run: int
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    started: float = field(default_factory=time.perf_counter)
    done: int = 0

    def line(self, item: PlannedCell, status: str, text: str) -> None:
        """Print the cell's line and the time left for the cells still to run."""
        self.done += 1
        elapsed = time.perf_counter() - self.started
        left = (self.to_run - self.done) * elapsed / self.done
        print(
            f"{item.label(self.total)}: {status} {text}; ETA {_duration(left)}",
            file=self.stream,
            flush=True,
        )


def sweep_dir_of(grid_name: str, output: str | None, base_output: object) -> Path:
    """``--out``, else ``OUTPUT/sweep-GRID`` beside the base scenario's runs (a fixed place,
    so that the same command finds the same sweep)."""
    if output is not None:
        return Path(output)
    return Path(str(base_output) if base_output is not None else "runs") / f"sweep-{grid_name}"


def run_sweep(
    source: str,
    *,
    command: str,
    output: str | None,
    skip_invalid: bool,
    verbose: bool,
    ray_address: str | None = None,
    jobs: int = 1,
) -> int:
    """Validate every cell, run the ones not finished yet, return the exit code.

    ``ray_address``: a Ray cluster whose resources let several groups run at once
    (:mod:`fedshield.sweep.concurrent`); None runs the groups here, one after another, or up to
    ``jobs`` sessions at once in child processes.
    """
    grid = load_grid(source)
    sweep_dir = sweep_dir_of(grid.name, output, grid.base.get("output"))
    on_this_host = jobs > 1 and ray_address is None
    if on_this_host:
        # The children use the cores; this process only coordinates, so no OpenBLAS threads of
        # its own spin beside them (the children size theirs: common.tf_runtime).
        size_blas(1)
        # For the forked children; validation reads it from the cache either way.
        share_dataset(grid.cells()[0].document)
    with prewarmed(jobs if on_this_host else 0, verbose) as warm:
        plan = plan_grid(grid, sweep_dir, local_gpus=ray_address is None)
        total = len(plan.cells)
        for item in plan.invalid:
            print(f"invalid: {item.label(total)}: {item.error}", file=sys.stderr)
        if plan.invalid and not skip_invalid:
            raise FedshieldError(
                f"sweep: {len(plan.invalid)} of {total} cells are invalid (listed above); "
                "fix the grid or pass --skip-invalid to run the others"
            )
        index = SweepIndex(sweep_dir, command, source, grid.fields, plan)
        index.write()
        to_run = index.to_run()
        runnable = {item.cell.id for item in to_run}
        groups = [g for g in ([c for c in g if c.cell.id in runnable] for g in plan.groups) if g]
        at_once, children = _children(groups, index, ray_address, jobs, verbose)
        print(
            f"sweep {grid.name}: {total} cells in {len(plan.groups)} sessions ({at_once} at "
            f"once), {index.count('finished')} already finished, {len(to_run)} to run; files in "
            f"{sweep_dir}",
            flush=True,
        )
        progress = Progress(total, len(to_run))
        report = Report(index)
        record = partial(_record, index=index, progress=progress)
        if children:
            # The report is drawn once the last cell is recorded, while the children's engines
            # stop (Flower's threads wait out a 1 s queue timeout): up to a second saved.
            last = partial(_record, index=index, progress=progress, after_last=report.build)
            runner = GroupRunner(ray_address, verbose, last, index.session, warm=warm)
            _raise_stops(runner.run(children, at_once), index, sweep_dir)
        elif groups:
            _run_here(groups, index, record, verbose)
    return _finish_sweep(index, progress, report)


def _children(
    groups: Sequence[Sequence[PlannedCell]],
    index: SweepIndex,
    ray_address: str | None,
    jobs: int,
    verbose: bool,
) -> tuple[int, list[GroupJob]]:
    """How many sessions run at once, and the child processes' jobs (none: run here)."""
    if not groups:
        return 1, []
    if ray_address is not None:
        scenarios = [g[0].scenario for g in groups if g[0].scenario is not None]
        for scenario in scenarios:
            check_backend(scenario, ray_address)
        slots = cluster_slots(ray_address, scenarios, verbose=verbose)
        return plan_jobs(groups, index.run_dir, slots)
    if jobs > 1:
        return local_jobs(groups, index.run_dir, jobs)
    return 1, []


def _run_here(
    groups: Sequence[Sequence[PlannedCell]],
    index: SweepIndex,
    record: Callable[[PlannedCell, CellResult], None],
    verbose: bool,
) -> None:
    """The groups one after another in this process, each on its own private Ray."""
    import_apps(verbose)
    with round_lines_of(verbose) as round_lines:
        for group in groups:
            by_dir = {index.run_dir(item): item for item in group}
            cells = [(c.scenario, d) for d, c in by_dir.items() if c.scenario is not None]
            started = now()
            stops = run_group(
                cells,
                partial(_record_at, by_dir, record),
                round_lines=round_lines,
                verbose=verbose,
            )
            index.session(group[0].group, started, now())
            _raise_stops(stops, index, index.sweep_dir)


def _record_at(
    by_dir: dict[Path, PlannedCell],
    record: Callable[[PlannedCell, CellResult], None],
    run_dir: Path,
    result: CellResult,
) -> None:
    record(by_dir[run_dir], result)


def _record(
    item: PlannedCell,
    result: CellResult,
    *,
    index: SweepIndex,
    progress: Progress,
    after_last: Callable[[], None] | None = None,
) -> None:
    """The cell's status from its result: finished, interrupted or failed (with the reason);
    ``after_last`` runs once every cell to run has finished or failed."""
    summary = result.summary or {}
    if result.error is not None:
        index.set(item, "failed", result.error)
        progress.line(item, "FAILED", result.error)
    elif summary.get("status") == "finished":
        index.set(item, "finished")
        text = f"acc {summary['final_accuracy']:.4f} in {summary['wall_seconds']:.1f}s"
        progress.line(item, "finished", text)
    else:
        index.set(item, "interrupted")
    if after_last is not None and progress.done == progress.to_run:
        after_last()


@dataclass
class Report:
    """The sweep's report (tables, figures, ``report.md``: :mod:`fedshield.report`), built once,
    when at least one cell has finished."""

    index: SweepIndex
    path: Path | None = None

    def build(self) -> None:
        """Build it and print where, unless it has been built."""
        if self.path is None and self.index.count("finished"):
            self.path = build_report(self.index.sweep_dir, command=self.index.command)
            print(f"report: {self.path}", flush=True)


def _raise_stops(stops: Stops, index: SweepIndex, sweep_dir: Path) -> None:
    """A signal or an engine failure ends the sweep; the same command resumes it."""
    if stops.signals:
        raise SweepInterrupted(stops.signals[0], index)
    if stops.engine_errors:
        err = stops.engine_errors[0]
        kind = err.kind if isinstance(err, EngineFailed) else type(err).__name__
        raise FedshieldError(
            f"the simulation engine failed: {kind}; rerun the same command to "
            f"resume (files in {sweep_dir})"
        ) from err


def _finish_sweep(index: SweepIndex, progress: Progress, report: Report) -> int:
    """The sweep's closing step: the final index, the report of the finished cells unless it
    was drawn already, then the one-line verdict."""
    index.write()
    report.build()
    elapsed = _duration(time.perf_counter() - progress.started)
    failed = [cid for cid, status in index.status.items() if status == "failed"]
    counts = f"{index.count('finished')} finished, {index.count('invalid')} invalid skipped"
    if failed:
        raise FedshieldError(
            f"sweep: {len(failed)} cells failed ({', '.join(failed)}; reasons in "
            f"{index.sweep_dir / 'sweep.json'}); {counts}"
        )
    print(f"done: {counts} in {elapsed}; files in {index.sweep_dir}", flush=True)
    return 0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"

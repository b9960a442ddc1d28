"""``fedshield sweep``: run every cell of a grid, group by group, each group in one warm session.

The fixed cost of a simulation (Ray start, every actor importing TensorFlow and tracing its
model, shutdown) is paid once per group (:mod:`fedshield.sweep.plan`), not once per cell. A
signal stops the cell in flight (its summary says ``interrupted``) and the sweep exits with the
shell's code; the same command then resumes (:mod:`fedshield.sweep.index`).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from common.errors import FedshieldError
from common.results import atomic_write_json
from fedshield.report import build_report
from fedshield.runner import Interrupted, Stops, import_apps, run_session
from fedshield.sweep.grid import load_grid
from fedshield.sweep.index import SweepIndex, fresh_run_dir
from fedshield.sweep.plan import PlannedCell, concurrent_groups, plan_grid

if TYPE_CHECKING:  # imported when the sweep runs, after import_apps has quieted Flower
    from server.app import RunOutcome


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
    source: str, *, command: str, output: str | None, skip_invalid: bool, verbose: bool
) -> int:
    """Validate every cell, run the ones not finished yet, return the exit code."""
    grid = load_grid(source)
    sweep_dir = sweep_dir_of(grid.name, output, grid.base.get("output"))
    plan = plan_grid(grid, sweep_dir)
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
    # Groups are independent units: on the private local Ray (no cluster) one at a time.
    at_once = concurrent_groups(None, 1.0, len(plan.groups))
    print(
        f"sweep {grid.name}: {total} cells in {len(plan.groups)} sessions ({at_once} at once), "
        f"{index.count('finished')} already finished, {len(to_run)} to run; files in {sweep_dir}",
        flush=True,
    )
    progress = Progress(total, len(to_run))
    if to_run:
        import_apps(verbose)
    runnable = {item.cell.id for item in to_run}
    with _round_lines(verbose) as round_lines:
        for group in plan.groups:
            pending = [c for c in group if c.cell.id in runnable]
            if pending:
                stops = _run_group(pending, index, progress, round_lines, verbose)
                _raise_stops(stops, index, sweep_dir)
    return _finish_sweep(index, progress)


def _run_group(
    cells: Sequence[PlannedCell],
    index: SweepIndex,
    progress: Progress,
    round_lines: TextIO | None,
    verbose: bool,
) -> Stops:
    """One warm session serving ``cells`` in order; statuses and progress as each ends."""
    from server.app import RunOutcome
    from server.session import SessionCell, build_session_app
    from server.stopping import StopRequest

    stop = StopRequest()
    by_dir = {index.run_dir(item): item for item in cells}
    session = []
    for run_dir, item in by_dir.items():
        assert item.scenario is not None  # groups hold valid cells only
        outcome = RunOutcome(stop=stop, round_lines=round_lines)
        session.append(SessionCell(item.scenario, run_dir, outcome))

    def before(cell: SessionCell) -> None:
        fresh_run_dir(cell.run_dir)
        atomic_write_json(cell.run_dir / "scenario.json", cell.scenario.model_dump(mode="json"))

    def after(cell: SessionCell) -> None:
        _record(by_dir[cell.run_dir], cell.outcome, index, progress)

    app = build_session_app(session, stop, before=before, after=after)
    return run_session(
        session[0].scenario,  # the group's cells agree on what its clients are (session_key)
        app,
        stop,
        server_failed=lambda: any(c.outcome.error is not None for c in session),
        verbose=verbose,
    )


def _record(item: PlannedCell, outcome: RunOutcome, index: SweepIndex, progress: Progress) -> None:
    """The cell's status from its outcome: finished, interrupted or failed (with the reason)."""
    summary = outcome.summary or {}
    if outcome.error is not None:
        reason = f"{type(outcome.error).__name__}: {outcome.error}".splitlines()[0]
        index.set(item, "failed", reason)
        progress.line(item, "FAILED", reason)
    elif summary.get("status") == "finished":
        index.set(item, "finished")
        text = f"acc {summary['final_accuracy']:.4f} in {summary['wall_seconds']:.1f}s"
        progress.line(item, "finished", text)
    else:
        index.set(item, "interrupted")


def _raise_stops(stops: Stops, index: SweepIndex, sweep_dir: Path) -> None:
    """A signal or an engine failure ends the sweep; the same command resumes it."""
    if stops.signals:
        raise SweepInterrupted(stops.signals[0], index)
    if stops.engine_errors:
        err = stops.engine_errors[0]
        raise FedshieldError(
            f"the simulation engine failed: {type(err).__name__}; rerun the same command to "
            f"resume (files in {sweep_dir})"
        ) from err


def _finish_sweep(index: SweepIndex, progress: Progress) -> int:
    """The sweep's closing step: the final index, the report of the finished cells (tables,
    figures, ``report.md``: :mod:`fedshield.report`), then the one-line verdict."""
    index.write()
    if index.count("finished"):
        report = build_report(index.sweep_dir, command=index.command)
        print(f"report: {report}", flush=True)
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


@contextmanager
def _round_lines(verbose: bool) -> Iterator[TextIO | None]:
    """Where the cells' per-round lines go: stdout with ``--verbose``, nowhere otherwise."""
    if verbose:
        yield None
        return
    with open(os.devnull, "w", encoding="utf-8") as sink:
        yield sink


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"

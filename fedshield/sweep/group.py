"""One group of a sweep's cells in one warm Flower session, here or in a child process.

Without a cluster the sweep runs its groups in its own process, one after another
(:mod:`fedshield.sweep.execute`), or with ``--jobs N`` up to N child processes at once. On a
cluster every group runs in a child process
(``python -m fedshield.sweep.group``) attached to the same Ray address, several at once
(:mod:`fedshield.sweep.concurrent`). Processes, not several ``run_simulation`` threads in one
driver, because three things are per process:

- the clients' trust anchor reaches a cluster's workers in the job's runtime environment, set
  once per ``ray.init``, that is once per driver; groups differ in it by construction
  (:func:`fedshield.sweep.plan.session_key`), so two groups in one driver would give one of
  them the other's anchor;
- the ServerApp draws its initial weights after ``tf.keras.utils.set_random_seed``, which is
  process-global: two sessions in one process would interleave their draws, and the metrics
  would depend on the timing;
- signal handlers belong to the main thread, and Flower's backend registry is a module global.

The child imports the apps, then reads its work as JSON on stdin (``{"address", "pool_size",
"verbose", "cells": [{"id", "run_dir", "scenario"}]}``; ``address`` None: a private Ray, or none
under ``simulation.backend = "process"``) and writes one JSON line per finished, interrupted or
failed cell (``{"cell", "error", "summary"}``), then one ``{"stops": {"signals",
"engine_errors"}}``, to the file descriptor given as its argument. Its stdout and stderr are the
sweep's.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from common.collector import skip_final_collection
from common.errors import FedshieldError
from common.results import atomic_write_json, to_json
from common.schema import Scenario
from fedshield.ray_session import first_line
from fedshield.runner import Stops, import_apps, run_session
from fedshield.sweep.index import fresh_run_dir

if TYPE_CHECKING:
    from server.app import RunOutcome


class EngineFailed(Exception):
    """A group's engine failure, as its child process reported it (``kind``: the error's type)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True)
class CellResult:
    """How a cell ended: its error's first line (failed), else its summary (None: never ran)."""

    error: str | None
    summary: dict[str, Any] | None

    @classmethod
    def of(cls, outcome: RunOutcome) -> CellResult:
        """The result the ServerApp recorded in ``outcome``."""
        if outcome.error is None:
            return cls(None, outcome.summary)
        return cls(f"{type(outcome.error).__name__}: {outcome.error}".splitlines()[0], None)


def run_group(
    cells: Sequence[tuple[Scenario, Path]],
    after: Callable[[Path, CellResult], None],
    *,
    round_lines: TextIO | None,
    verbose: bool,
    ray_address: str | None = None,
    pool_size: int | None = None,
) -> Stops:
    """One warm session serving ``cells`` (scenario, run directory) in order.

    Each cell starts in an empty directory holding its ``scenario.json``; ``after(run_dir,
    result)`` runs as each ends. On a cluster the start-up check was the sweep's (``check``
    off) and the session creates at most ``pool_size`` actors.
    """
    from server.app import RunOutcome
    from server.session import SessionCell, build_session_app
    from server.stopping import StopRequest

    stop = StopRequest()
    session = [
        SessionCell(scenario, run_dir, RunOutcome(stop=stop, round_lines=round_lines))
        for scenario, run_dir in cells
    ]

    def before(cell: SessionCell) -> None:
        fresh_run_dir(cell.run_dir)
        atomic_write_json(cell.run_dir / "scenario.json", cell.scenario.model_dump(mode="json"))

    app = build_session_app(
        session, stop, before=before, after=lambda c: after(c.run_dir, CellResult.of(c.outcome))
    )
    return run_session(
        session[0].scenario,  # the group's cells agree on what its clients are (session_key)
        app,
        stop,
        server_failed=lambda: any(c.outcome.error is not None for c in session),
        verbose=verbose,
        ray_address=ray_address,
        pool_size=pool_size,
        check=ray_address is None,
    )


@contextmanager
def round_lines_of(verbose: bool) -> Iterator[TextIO | None]:
    """Where the cells' per-round lines go: stdout with ``--verbose``, nowhere otherwise."""
    if verbose:
        yield None
        return
    with open(os.devnull, "w", encoding="utf-8") as sink:
        yield sink


class _Signalled(BaseException):
    """A signal outside the session (while the child starts or leaves the cluster)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, frame: FrameType | None) -> None:
    del frame
    raise _Signalled(signum)


def _follow_parent(parent: int, poll: float = 0.5) -> None:
    """Once the sweep's process is gone, stop this group as its SIGTERM would."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@dataclass
class EventChannel:
    """The child's events to the sweep, one JSON line each, ending with its ``stops`` event.

    A signal can end :func:`child_main` while a Flower session thread is still finishing its
    cell; whatever that thread reports after the final event is dropped (the sweep has stopped
    listening, and a cell without a result stays pending for the resume), not written to a
    closed file with a traceback.
    """

    stream: TextIO
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ended: bool = False

    def emit(self, event: dict[str, Any], *, last: bool = False) -> None:
        """Write ``event`` (``last``: the final one) unless the final event has gone out."""
        with self._lock:
            if self._ended:
                return
            self.stream.write(to_json(event) + "\n")  # one write per line: the reader splits
            self.stream.flush()
            self._ended = last


def child_main(spec: dict[str, Any], events: TextIO) -> None:
    """The child process: run the group in ``spec``, reporting on ``events``."""
    emit = EventChannel(events).emit
    ids = {Path(c["run_dir"]): c["id"] for c in spec["cells"]}
    stops = Stops()
    try:
        import_apps(spec["verbose"])
        scenarios = [Scenario.model_validate(c["scenario"]) for c in spec["cells"]]
        cells = list(zip(scenarios, ids, strict=True))
        with round_lines_of(spec["verbose"]) as lines:
            stops = run_group(
                cells,
                lambda run_dir, result: emit({"cell": ids[run_dir], **asdict(result)}),
                round_lines=lines,
                verbose=spec["verbose"],
                ray_address=spec["address"],
                pool_size=spec["pool_size"],
            )
    except _Signalled as stopped:
        stops.signals.append(stopped.signum)
    except FedshieldError as err:  # attaching failed: the sweep reports it as the engine's
        stops.engine_errors.append(err)
    kinds = [f"{type(e).__name__}: {first_line(e)}" for e in stops.engine_errors]
    emit({"stops": {"signals": stops.signals, "engine_errors": kinds}}, last=True)


def _serve(work: str, events_fd: int) -> None:
    """Run the work the sweep sent (none: not needed), reporting on ``events_fd``."""
    if not work.strip():  # the sweep closed the pipe without work for it
        os.close(events_fd)
        return
    with os.fdopen(events_fd, "w", encoding="utf-8") as events:
        child_main(json.loads(work), events)


def _await_work(read: Callable[[], str], verbose: bool) -> str:
    """Handlers for the sweep's signals, then the imports (a process the sweep started ahead is
    ready when its work comes), then the work; exits when dismissed before it had any."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_signalled)
    _follow_parent(os.getppid())
    try:
        import_apps(verbose)
        return read()
    except _Signalled as stopped:  # dismissed before it had work: not needed, or interrupted
        sys.exit(128 + stopped.signum)


def forked_main(work_fd: int, events_fd: int, verbose: bool) -> None:
    """A group process forked from the sweep (:mod:`fedshield.sweep.forked`): its work comes on
    ``work_fd``."""
    with os.fdopen(work_fd, encoding="utf-8") as work:
        text = _await_work(work.read, verbose)
    _serve(text, events_fd)


def main() -> None:
    """``python -m fedshield.sweep.group EVENTS_FD [--verbose]`` (started by the sweep, never by
    hand): its work comes on stdin."""
    _serve(_await_work(sys.stdin.read, "--verbose" in sys.argv[2:]), int(sys.argv[1]))
    skip_final_collection()  # the sweep waits for this process's exit (common.collector)


if __name__ == "__main__":
    main()

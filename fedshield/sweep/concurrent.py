"""A sweep on a Ray cluster: independent groups side by side, each in its own child process.

The sweep attaches once to read what the cluster holds and to run the start-up check
(:func:`fedshield.ray_cluster.check_workers`), then leaves. Up to
:func:`fedshield.sweep.plan.concurrent_groups` groups run at once, each a child process
(:mod:`fedshield.sweep.group`) that attaches to the same address as its own Ray job and runs
its cells one after another in one warm session, with at most
:func:`fedshield.sweep.plan.pool_share` client actors. This process starts the groups in grid
order as places free up, records every cell the children report in ``sweep.json``, prints the
progress lines, and passes a SIGINT or SIGTERM on to the running groups (which stop their cell
in flight, as a sweep without a cluster does).

Without a cluster, ``fedshield sweep --jobs N`` runs up to ``N`` sessions side by side on this
machine the same way (:func:`local_jobs`): groups, and a group's cells cut into contiguous parts
when there are fewer groups than ``N``. Its children are started before the sweep validates its
cells (:func:`prewarmed`): forked from the sweep once it has imported TensorFlow, Flower and the
apps (:mod:`fedshield.sweep.forked`), so those imports are paid once, not once per process; each
reads its work once the sweep has validated every cell.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, Queue
from typing import Any

from common.crypto.keys import ClientTrust
from common.results import to_json
from common.schema import Scenario
from fedshield.ray_cluster import actor_capacity, attached_ray, check_workers, client_resources
from fedshield.ray_session import stop_on_signals
from fedshield.runner import Stops, import_apps
from fedshield.sweep.forked import ForkedProcess, can_fork, fork
from fedshield.sweep.group import CellResult, EngineFailed
from fedshield.sweep.plan import PlannedCell, concurrent_groups, pool_share

CHILD = (sys.executable, "-m", "fedshield.sweep.group")
"""The command of a group's process; its last argument is the events' file descriptor."""


@dataclass(frozen=True)
class GroupJob:
    """A group's cells still to run (all of them or a part), where each writes, and its share of
    the cluster's actors (None: a private Ray sizes its own pool)."""

    group: int
    cells: Sequence[PlannedCell]
    run_dirs: Sequence[Path]
    pool_size: int | None


@dataclass
class Spawned:
    """A group process started and waiting for its work on stdin."""

    process: subprocess.Popen[str] | ForkedProcess
    events: int  # the read end of its events' pipe

    def dismiss(self) -> None:
        """It is not needed: end it (it may still be importing) and close its pipes."""
        with suppress(OSError):
            self.process.terminate()
        self.process.wait()
        if self.process.stdin is not None:
            with suppress(BrokenPipeError):
                self.process.stdin.close()
        os.close(self.events)


@dataclass
class _Child:
    job: GroupJob
    process: subprocess.Popen[str] | ForkedProcess
    events: int  # the read end of its events' pipe
    started: str
    stopped: bool = False  # its final ``stops`` event arrived


def now() -> str:
    """The current UTC time, ISO 8601 with milliseconds (``sweep.json``'s session times)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def cluster_slots(address: str, scenarios: Sequence[Scenario], *, verbose: bool) -> list[int]:
    """Attach once: the start-up check with the first scenario, then how many client actors of
    each scenario's resources the cluster holds (:func:`fedshield.ray_cluster.actor_capacity`)."""
    import ray

    first = scenarios[0]
    os.environ.update(ClientTrust.of(first.integrity, first.seed).environment())
    with attached_ray(address, verbose=verbose):
        print(check_workers(first, address), flush=True)
        nodes = ray.nodes()
    return [actor_capacity(nodes, client_resources(s.simulation))[1] for s in scenarios]


def plan_jobs(
    groups: Sequence[Sequence[PlannedCell]],
    run_dir: Callable[[PlannedCell], Path],
    slots: Sequence[int],
) -> tuple[int, list[GroupJob]]:
    """How many groups run at once (the most demanding group decides), and each group's job."""
    at_once = concurrent_groups(min(slots), len(groups))
    jobs = [
        GroupJob(cells[0].group, cells, [run_dir(c) for c in cells], pool_share(n, at_once))
        for cells, n in zip(groups, slots, strict=True)
    ]
    return at_once, jobs


def local_jobs(
    groups: Sequence[Sequence[PlannedCell]], run_dir: Callable[[PlannedCell], Path], jobs: int
) -> tuple[int, list[GroupJob]]:
    """``--jobs`` without a cluster: at most ``jobs`` sessions at once, and at least as many
    parts as that where the cells allow (the largest part is halved until there are).

    Each part is a session of its own (its own fixed cost, its own private Ray under the Ray
    backend); the cells of a part stay in grid order.
    """
    parts = [list(g) for g in groups]
    while len(parts) < jobs and max(len(p) for p in parts) > 1:
        k = max(range(len(parts)), key=lambda i: len(parts[i]))
        half = (len(parts[k]) + 1) // 2
        parts[k : k + 1] = [parts[k][:half], parts[k][half:]]
    at_once = min(jobs, len(parts))
    return at_once, [GroupJob(p[0].group, p, [run_dir(c) for c in p], None) for p in parts]


def spawn(command: Sequence[str], verbose: bool) -> Spawned:
    """Start a group process, a fresh interpreter; it reads its work from stdin when
    :func:`_start` writes it."""
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [*command, str(write_end), *(["--verbose"] if verbose else [])],
        stdin=subprocess.PIPE,
        pass_fds=(write_end,),
        text=True,
        start_new_session=True,  # the terminal's Ctrl-C reaches the sweep, which passes it on
    )
    os.close(write_end)
    return Spawned(process, read_end)


@contextmanager
def prewarmed(count: int, verbose: bool, command: Sequence[str] = CHILD) -> Iterator[list[Spawned]]:
    """``count`` group processes started now, before the sweep validates its cells or attaches to
    anything; those still in the list when the block ends (not needed, or the sweep failed
    first) are dismissed.

    The real group (``command`` is :data:`CHILD`) is forked from this process after the apps'
    imports where that is safe (:mod:`fedshield.sweep.forked`), so it imports nothing; only here,
    at the sweep's start: later the sweep holds its event-reader threads, or has attached to Ray
    (a cluster's check), whose state a fork would copy broken. Otherwise each is a fresh
    interpreter.
    """
    warm = [_early(command, verbose) for _ in range(count)]
    try:
        yield warm
    finally:
        for spawned in warm:
            spawned.dismiss()


def _early(command: Sequence[str], verbose: bool) -> Spawned:
    """A group process for :func:`prewarmed`: forked if it can be, spawned otherwise."""
    if tuple(command) == CHILD:
        import_apps(verbose)  # once per process: the next children find them imported
        if can_fork():
            return Spawned(*fork(verbose))
    return spawn(command, verbose)


def _start(job: GroupJob, address: str | None, verbose: bool, spawned: Spawned) -> _Child:
    cells = [
        {"id": c.cell.id, "run_dir": str(d), "scenario": c.scenario.model_dump(mode="json")}
        for c, d in zip(job.cells, job.run_dirs, strict=True)
        if c.scenario is not None
    ]
    spec = {"address": address, "pool_size": job.pool_size, "verbose": verbose, "cells": cells}
    process = spawned.process
    assert process.stdin is not None
    with suppress(BrokenPipeError):  # it died at once: its exit code tells the sweep
        process.stdin.write(to_json(spec))
        process.stdin.close()
    return _Child(job, process, spawned.events, now())


def _read_events(group: int, fd: int, events: Queue[tuple[int, dict[str, Any] | None]]) -> None:
    """Pass the child's events on until it closes its end; then None, always (a child that
    dies mid-line leaves a line that is not JSON, and ends there)."""
    try:
        with os.fdopen(fd, encoding="utf-8") as stream:
            for line in stream:
                events.put((group, json.loads(line)))
    except ValueError:
        pass
    finally:
        events.put((group, None))


@dataclass
class GroupRunner:
    """Runs jobs ``at_once`` at a time; ``record(cell, result)`` and ``session(group, started,
    ended)`` are called in this (the main) thread as the children report."""

    address: str | None
    verbose: bool
    record: Callable[[PlannedCell, CellResult], None]
    session: Callable[[int, str, str], None]
    command: Sequence[str] = CHILD
    warm: list[Spawned] = field(default_factory=list)
    """Processes already started (:func:`prewarmed`), used before new ones are."""
    stops: Stops = field(default_factory=Stops)
    spans: dict[int, tuple[str, str]] = field(default_factory=dict)
    """Each group's first start and last end (a group cut into parts has several sessions)."""

    def run(self, jobs: Sequence[GroupJob], at_once: int) -> Stops:
        """Every job, in order, at most ``at_once`` at a time; what stopped the sweep."""
        waiting, running = deque(enumerate(jobs)), dict[int, _Child]()
        events: Queue[tuple[int, dict[str, Any] | None]] = Queue()

        def on_signal(signum: int) -> None:
            self.stops.signals.append(signum)
            for child in running.values():
                child.process.send_signal(signum)

        with stop_on_signals(on_signal):
            while waiting or running:
                while waiting and len(running) < at_once and not self._stopping():
                    key, job = waiting.popleft()
                    spawned = self.warm.pop(0) if self.warm else spawn(self.command, self.verbose)
                    child = _start(job, self.address, self.verbose, spawned)
                    running[key] = child
                    reader = (key, child.events, events)
                    threading.Thread(target=_read_events, args=reader, daemon=True).start()
                if not running:
                    break
                try:
                    key, event = events.get(timeout=0.2)
                except Empty:
                    continue
                self._handle(running, key, event)
        return self.stops

    def _stopping(self) -> bool:
        return bool(self.stops.signals or self.stops.engine_errors)

    def _handle(self, running: dict[int, _Child], key: int, event: dict[str, Any] | None) -> None:
        child = running[key]
        group = child.job.group
        if event is None:  # the child closed its events: it is ending
            del running[key]
            code = child.process.wait()
            started, ended = self.spans.get(group, (child.started, now()))
            self.spans[group] = (min(started, child.started), max(ended, now()))
            self.session(group, *self.spans[group])
            if not child.stopped and not self.stops.signals:
                kind = f"group {group}'s process ended with exit code {code}"
                self.stops.engine_errors.append(EngineFailed(kind))
        elif "cell" in event:
            by_id = {c.cell.id: c for c in child.job.cells}
            self.record(by_id[event["cell"]], CellResult(event["error"], event["summary"]))
        else:
            child.stopped = True
            signals = event["stops"]["signals"]
            if signals and not self.stops.signals:  # signalled on its own: the sweep stops too
                self.stops.signals.append(signals[0])
            kinds = event["stops"]["engine_errors"]
            self.stops.engine_errors.extend(EngineFailed(kind) for kind in kinds)

"""Group processes forked from the sweep after its imports, so TensorFlow is imported once.

``fedshield sweep --jobs N`` runs N sessions side by side. Started as fresh interpreters
(``python -m fedshield.sweep.group``), every one of them imports TensorFlow, Flower and the apps
again: about 6 s of CPU each, three imports at once with the sweep's own on a 2-core machine,
before the first cell can start. A child made with :func:`os.fork` after the sweep has imported
them starts with every module in place (its memory is the sweep's, copied on write).

Forking is safe only before TensorFlow's runtime starts. Importing TensorFlow starts no thread
pool and no device (the eager context is created by the first op), but once an op has run the
runtime's threads exist in the parent only, and a child that touches TF would wait on them
forever. So the sweep forks its children *before* it validates (the memory check builds its
models in a graph of their own, which starts no runtime, but an earlier caller may have run TF)
and only while :func:`can_fork` holds: TF's eager context not initialised, and no Python thread
but this one (a fork copies the calling thread only; a lock another thread held would stay held
in the child). Ray's gRPC client has the same trouble, and closing the connection does not clear
it: a child forked after a Ray attach waits forever in ``ray.init``. So forks happen only at the
start of a sweep, before it validates or attaches anything
(:func:`fedshield.sweep.concurrent.prewarmed`); a group started later, or where
:func:`can_fork` fails (a test process that has run TF, say), is a fresh interpreter
(:func:`fedshield.sweep.concurrent.spawn`).

The child speaks the group protocol of :mod:`fedshield.sweep.group` on two pipes: its work on
one, its events on the other. It leaves with :func:`os._exit`, so nothing of the sweep's
(``atexit`` hooks, a test runner's frames) runs a second time in it.
"""

from __future__ import annotations

import gc
import os
import signal
import stat
import sys
import threading
import traceback
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TextIO

_SWEEP_ENDS: dict[int, int] = {}
"""The sweep's ends of every forked child's pipes, by file descriptor, with the pipe's inode: a
later child closes its copies, or an earlier child would never see the end of its work (a copy of
the write end would stay open). The inode tells a descriptor the sweep has closed since, and the
number reused for another file, from the pipe end itself."""


@dataclass
class ForkedProcess:
    """The part of :class:`subprocess.Popen` the sweep uses, for a child made by :func:`fork`."""

    pid: int
    stdin: TextIO | None
    returncode: int | None = field(default=None)

    def poll(self) -> int | None:
        """The exit code if the child has ended (reaped now), else None."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        """Wait for the child; its exit code (``-N``: killed by signal N, as Popen says)."""
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        """Signal the child unless it has been reaped (its pid may be another process's now)."""
        if self.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        """SIGTERM, as :meth:`subprocess.Popen.terminate`."""
        self.send_signal(signal.SIGTERM)


def tensorflow_started() -> bool:
    """Whether this process has run a TensorFlow op (its eager context is initialised)."""
    if "tensorflow" not in sys.modules:
        return False
    from tensorflow.python.eager import context

    started = context.context_safe()
    return started is not None and bool(started._initialized)  # noqa: SLF001 (no public probe)


def can_fork() -> bool:
    """A child forked now would work: TF's runtime not started and no Python thread but this
    one (a live Ray connection has its own threads: refused too). A Ray connection closed earlier
    leaves gRPC state a child cannot use, which no probe shows: the sweep forks only at its start
    (:func:`fedshield.sweep.concurrent.prewarmed`)."""
    return threading.active_count() == 1 and not tensorflow_started()


def fork(verbose: bool) -> tuple[ForkedProcess, int]:
    """A group process forked from this one, waiting for its work; the read end of its events.

    The child runs :func:`fedshield.sweep.group.forked_main` in a session of its own (the
    terminal's Ctrl-C reaches the sweep, which passes it on, as for a spawned child).
    """
    from fedshield.sweep.group import forked_main

    live = {fd: _SWEEP_ENDS[fd] for fd in _pipe_ends()}
    _SWEEP_ENDS.clear()
    _SWEEP_ENDS.update(live)
    work_read, work_write = os.pipe()
    events_read, events_write = os.pipe()
    for stream in (sys.stdout, sys.stderr):  # or the child would print them a second time
        stream.flush()
    # Every object alive now (the modules, the dataset) to the collector's permanent generation,
    # as gc.freeze's documentation advises before a fork: the child's full collections then
    # neither traverse them (CPU) nor write their headers (copying the parent's pages).
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the sweep's frames
        code = 1
        try:
            os.close(work_write)
            os.close(events_read)
            for fd in _pipe_ends():
                os.close(fd)
            os.setsid()
            forked_main(work_read, events_write, verbose)
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except KeyboardInterrupt:  # the sweep's SIGINT before the child's own handler was set
            code = 128 + signal.SIGINT
        except BaseException:  # noqa: BLE001 (report, then leave: this is the process's top)
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with suppress(Exception):
                    stream.flush()
            os._exit(code)
    os.close(work_read)
    os.close(events_write)
    for fd in (work_write, events_read):
        _SWEEP_ENDS[fd] = os.fstat(fd).st_ino
    return ForkedProcess(pid, os.fdopen(work_write, "w", encoding="utf-8")), events_read


def _pipe_ends() -> list[int]:
    """The descriptors in :data:`_SWEEP_ENDS` that are still those pipe ends."""
    ends = []
    for fd, inode in _SWEEP_ENDS.items():
        with suppress(OSError):
            status = os.fstat(fd)
            if stat.S_ISFIFO(status.st_mode) and status.st_ino == inode:
                ends.append(fd)
    return ends


def share_dataset(document: Mapping[str, Any]) -> None:
    """Load the dataset of a cell's ``document`` here, before the children are forked.

    They inherit it loaded (:func:`common.data.shards.dataset_of` caches it per process) with
    the modules its reader imports on first use: 0.4 s of CPU in each child otherwise for
    ``digits`` (scikit-learn's loader and the file; other seeds then cost 20 ms). A document
    that does not validate, or whose data cannot be read, is left to the sweep's validation,
    which names the field: nothing is reported here.
    """
    from pydantic import ValidationError

    from common.data.shards import dataset_of
    from common.errors import FedshieldError
    from common.schema import Scenario

    with suppress(ValidationError, FedshieldError):
        dataset_of(Scenario.model_validate(document))

"""Shared by the signal tests: a ``fedshield run`` in a real process, and the processes it owns."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TINY_RUN = [
    "--set",
    "data.num_clients=3",
    "--set",
    "train.local_epochs=1",
    "--set",
    "simulation.num_cpus=1",
    "--set",
    "simulation.round_timeout=300",
]


def start_run(
    output: Path, *overrides: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """``fedshield run quickstart`` with the tiny settings, stdout and stderr piped.

    The run leads its own process group, as a shell's foreground job does, so a test can send a
    signal to the whole group as a terminal's Ctrl-C does.
    """
    command = [sys.executable, "-m", "fedshield.cli", "run", "quickstart", *TINY_RUN]
    command += ["--set", f'output="{output}"', *overrides]
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=cwd,
        start_new_session=True,
    )


def wait_for_round(run: subprocess.Popen[str], server_round: int) -> list[str]:
    """Read the run's progress lines until round ``server_round`` is printed; returns them."""
    assert run.stdout is not None
    lines = []
    for line in run.stdout:
        lines.append(line)
        if line.startswith(f"round {server_round:>3}/"):
            return lines
    raise AssertionError(f"the run ended before round {server_round}: {lines}")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` in the process tree, now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat:
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def naming(text: str) -> set[int]:
    """Live processes whose command line contains ``text``."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue
    return {pid for pid in found if alive(pid) and pid != os.getpid()}


def ray_dir_of(pids: set[int]) -> str:
    """The private Ray directory (``.../fsray-XXXX``) named by one of ``pids``' command lines."""
    for pid in pids:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        for arg in args:
            if "fsray-" in arg:
                head, tail = arg.split("fsray-", 1)
                return head.rsplit("=", 1)[-1] + "fsray-" + tail.split("/", 1)[0]
    raise AssertionError("no process of the run names a private Ray directory")


def left_after(pids: set[int], seconds: float) -> set[int]:
    """Those of ``pids`` still alive after up to ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left

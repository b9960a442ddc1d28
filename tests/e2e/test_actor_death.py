"""A client's Ray actor killed mid-round: the round records the failure, the run completes.

The adversary is the host: the kernel's OOM killer or a crash inside TensorFlow takes one client
actor down while it trains. Before, Flower put the dead actor back into its pool, so every
message it was later handed failed too. Now the actor is replaced (``fedshield/actor_pool.py``):
the client of the killed job is recorded as failed in that round, and the rounds after it have
every reply again.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e._processes import descendants, start_run, wait_for_round

pytestmark = pytest.mark.e2e


def _busy_actor(driver: int, seconds: float = 60) -> int:
    """A client actor of the run that is running a job (its title names the method)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for pid in descendants(driver):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::ClientAppActor.run"):
                return pid
        time.sleep(0.02)
    raise AssertionError("no client actor was seen training")


def test_a_killed_actor_fails_its_client_for_one_round_only(tmp_path: Path) -> None:
    run = start_run(tmp_path, "--set", "rounds=4", "--set", "simulation.round_timeout=60")
    try:
        wait_for_round(run, 1)
        victim = _busy_actor(run.pid)
        os.kill(victim, signal.SIGKILL)  # while it trains
        out, err = run.communicate(timeout=400)
    finally:
        run.kill()
    assert run.returncode == 0, err
    (run_dir,) = tmp_path.iterdir()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2, 3, 4]
    died = [
        (r["round"], p, reason)
        for r in rows[1:]
        for p, reason in r["failures"].items()
        if "Ray actor died" in reason
    ]
    assert len(died) == 1, rows
    killed_round, partition, reason = died[0]
    assert reason == "the client's Ray actor died (ActorDiedError); a new actor replaces it"
    for row in rows[killed_round + 1 :]:  # the new actor answers from the next round on
        assert row["num_failures"] == 0 and row["num_replies"] == 3, row
    warning = f"warning: round {killed_round}: client {partition} failed: {reason}"
    assert warning in err.splitlines(), err
    assert "done: final accuracy" in out

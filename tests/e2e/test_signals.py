"""Stopping a run: SIGINT, SIGTERM and SIGKILL of the driver, and a failing simulation engine.

The adversary here is the operator's own machine: a Ctrl-C, a scheduler's SIGTERM, an OOM
killer's SIGKILL, a broken actor pool. Each must end the run promptly, say so in
``summary.json`` and on one stderr line, and leave no Ray process behind.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from common.errors import FedshieldError
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario
from tests.e2e._processes import (
    descendants,
    left_after,
    naming,
    ray_dir_of,
    start_run,
    wait_for_round,
)

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("signum", "code", "to_group"),
    # Ctrl-C reaches the whole foreground group (Ray's processes too); SIGTERM, the driver only.
    [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)],
)
def test_a_signal_after_round_two_stops_the_run(
    tmp_path: Path, signum: int, code: int, to_group: bool
) -> None:
    run = start_run(tmp_path, "--set", "rounds=5")
    try:
        wait_for_round(run, 2)
        owned = descendants(run.pid)
        ray_dir = ray_dir_of(owned)
        if to_group:
            os.killpg(run.pid, signum)
        else:
            run.send_signal(signum)
        sent = time.monotonic()
        out, err = run.communicate(timeout=20)  # before the fix: never (SIGINT), or -6
        exited_after = time.monotonic() - sent
    finally:
        run.kill()
    assert run.returncode == code
    assert exited_after < 20
    name = signal.Signals(signum).name
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"interrupted by {name} after round "), err
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert summary["status"] == "interrupted"
    assert summary["stopped_by"] == f"signal {name}"
    # Round 3 had started when the signal came: abandoned, never recorded, nothing after it.
    assert summary["last_round"] == rows[-1]["round"] == 2
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert f"after round 2; files in {run_dir}" in lines[0]
    assert "SKIPPED" not in out
    assert left_after(owned, 5) == set()
    assert naming(ray_dir) == set()
    assert not Path(ray_dir).exists()


def test_no_ray_process_outlives_a_killed_driver(tmp_path: Path) -> None:
    run = start_run(tmp_path, "--set", "rounds=5")
    try:
        wait_for_round(run, 1)
        owned = descendants(run.pid)
        ray_dir = ray_dir_of(owned)
        assert len(naming(ray_dir)) >= 3  # gcs_server, raylet, agents: the check has teeth
    finally:
        run.kill()
        run.wait()
    # Before the fix Ray's dashboard agent and runtime-env agent lived on, under pid 1.
    watchdog = naming(f"fedshield.ray_session {run.pid} ")
    assert left_after(owned - watchdog, 10) == set()
    assert left_after(naming(ray_dir), 10) == set()
    assert left_after(watchdog, 5) == set()


def test_a_finished_run_says_finished(tmp_path: Path) -> None:
    run = start_run(tmp_path, "--set", "rounds=1")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert err == ""
    assert out.splitlines()[-1].startswith("done: ")
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["last_round"]) == ("finished", 1)


def test_a_failing_actor_pool_ends_the_run_with_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flwr.server.superlink.fleet.vce.backend import raybackend

    def no_actors(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no actor could be placed")

    # Flower's engine catches this, then waits for the ServerApp, which waits for round 1's
    # replies (round_timeout, 300 s here); before the fix the run hung. The handshake reads the
    # engine's node registry and round 0 (the initial model's evaluation) is recorded first.
    monkeypatch.setattr(raybackend, "BasicActorPool", no_actors)
    scenario = load_scenario(
        "quickstart",
        ["data.num_clients=3", "rounds=2", "simulation.round_timeout=300", f'output="{tmp_path}"'],
    )
    started = time.monotonic()
    with pytest.raises(FedshieldError) as raised:
        run_scenario(scenario)
    assert time.monotonic() - started < 120
    message = str(raised.value)
    assert message.startswith(
        "the simulation engine failed: RuntimeError: no actor could be placed (files in "
    )
    assert "\n" not in message
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["last_round"] == 0

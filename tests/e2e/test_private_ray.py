"""Without an address, a run starts its own Ray and never joins a cluster already running.

The adversary: a Ray head someone started on the same machine (``ray start --head``). A bare
``ray.init()`` finds it through the session file it leaves in Ray's temporary directory, and
Flower's ``num_cpus`` is then refused inside Flower's engine, which hung the run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedshield.ray_session import kill_session
from tests.e2e._processes import REPO, start_run

pytestmark = pytest.mark.e2e

RAY = str(Path(sys.executable).parent / "ray")

# Prints the address of the cluster a bare ray.init() joins, and the pids of its drivers.
_PROBE = """
import json, sys, ray
ray.init(address=sys.argv[1] if len(sys.argv) > 1 else None, logging_level="ERROR")
jobs = ray._private.state.jobs()
print(json.dumps({"gcs": ray.get_runtime_context().gcs_address,
                  "drivers": [j["DriverPid"] for j in jobs]}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _probe(env: dict[str, str], *address: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *address],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(done.stdout.splitlines()[-1]))


@pytest.fixture
def ray_head() -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray head on loopback, in its own temporary directory; always stopped, even on failure.

    Yields its address and the environment in which a bare ``ray.init()`` finds it. Only this
    head's processes are ended (those naming its directory): never ``ray stop``, which would
    end every Ray process of the user on the machine.
    """
    temp = Path(tempfile.mkdtemp(prefix="fsh-", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, "RAY_TMPDIR": str(temp), "TMPDIR": str(temp), "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    address = f"127.0.0.1:{_free_port()}"
    try:
        subprocess.run(
            [RAY, "start", "--head", f"--port={address.split(':')[1]}"]
            + ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--include-dashboard=false"]
            + ["--disable-usage-stats"],
            env=env,
            capture_output=True,
            timeout=120,
            check=True,
        )
        yield address, env
    finally:
        kill_session(temp)


def test_a_run_without_an_address_does_not_join_a_running_head(
    tmp_path: Path, ray_head: tuple[str, dict[str, str]]
) -> None:
    address, env = ray_head
    # The check has teeth: in this environment a bare ray.init() joins the head.
    # (Ray reports the head by the host's address, not loopback: compare the port.)
    assert str(_probe(env)["gcs"]).rsplit(":", 1)[1] == address.rsplit(":", 1)[1]

    run = start_run(tmp_path, "--set", "rounds=2", env=env)
    out, err = run.communicate(timeout=300)

    assert run.returncode == 0, err
    assert err == ""
    (run_dir,) = tmp_path.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["last_round"]) == ("finished", 2)
    assert [line.split()[1] for line in out.splitlines() if line.startswith("round")] == [
        "0/2",
        "1/2",
        "2/2",
    ]
    # The head never saw the run's driver.
    assert run.pid not in _probe(env, address)["drivers"]  # type: ignore[operator]

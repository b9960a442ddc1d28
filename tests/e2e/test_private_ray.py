"""A run attaches to a Ray cluster only when given its address, and then runs on it.

The adversary of the second test: a Ray head someone started on the same machine (``ray start
--head``). A bare ``ray.init()`` finds it through the session file it leaves in Ray's temporary
directory, and Flower's ``num_cpus`` is then refused inside Flower's engine, which hung the run.

The head is started without this repository on its path and in another directory, as a node
of a real cluster would be: the attached run's workers can import fedshield only from the
runtime environment the driver ships.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedshield.ray_session import kill_session
from tests.e2e._processes import start_run

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


def _kill_client_server(port: str) -> None:
    """``ray start --head`` also starts a Ray Client server whose command line names the head's
    port but not its directory: end it too, or it outlives the test with parent 1."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            line = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if b"ray.util.client.server" in line and f":{port}\0".encode() in line:
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray head on loopback, in its own temporary directory; always stopped, even on failure.

    Yields its address and the environment in which a bare ``ray.init()`` finds it. Only this
    head's processes are ended (those naming its directory): never ``ray stop``, which would
    end every Ray process of the user on the machine.
    """
    temp = Path(tempfile.mkdtemp(prefix="fsh-", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, "RAY_TMPDIR": str(temp), "TMPDIR": str(temp)}
    env.pop("RAY_ADDRESS", None)
    env.pop("PYTHONPATH", None)
    address = f"127.0.0.1:{_free_port()}"
    try:
        subprocess.run(
            [RAY, "start", "--head", f"--port={address.split(':')[1]}"]
            + ["--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false"]
            + ["--disable-usage-stats"],
            env=env,
            cwd=temp,
            capture_output=True,
            timeout=120,
            check=True,
        )
        yield address, env
    finally:
        kill_session(temp)
        _kill_client_server(address.split(":")[1])


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


def test_a_run_with_an_address_runs_its_clients_on_that_head(
    tmp_path: Path, ray_head: tuple[str, dict[str, str]]
) -> None:
    address, env = ray_head
    temp = env["RAY_TMPDIR"]

    # Ray puts the driver's working directory on the workers' path (it assumes every node has
    # the same directories): run from elsewhere, as on a node without this checkout.
    output, cwd = tmp_path / "runs", tmp_path / "elsewhere"
    cwd.mkdir()
    run = start_run(output, "--set", "rounds=2", "--ray-address", address, env=env, cwd=cwd)
    out, err = run.communicate(timeout=300)

    assert run.returncode == 0, err
    check, *rounds = out.splitlines()
    # The start-up check ran on the head's worker, with fedshield from the shipped packages.
    assert check.startswith(f"cluster {address}: a worker on ")
    shipped = Path(check.split(" imports fedshield from ", 1)[1].split(" and reads ", 1)[0])
    assert shipped.is_relative_to(temp) and "runtime_resources" in shipped.parts
    assert check.endswith("and reads digits (1437 training examples)")
    assert [line.split()[1] for line in rounds if line.startswith("round")] == ["0/2", "1/2", "2/2"]
    (run_dir,) = output.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["last_round"]) == ("finished", 2)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [0, 1, 2]
    assert metrics[-1]["accuracy"] > metrics[0]["accuracy"] + 0.3
    # The head's job table holds the run's driver: it ran there, not on a private Ray.
    assert run.pid in _probe(env, address)["drivers"]  # type: ignore[operator]

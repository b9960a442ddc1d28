"""A Ray head on loopback for the cluster tests, and a look at its job table.

The head is started without this repository on its path and in another directory, as a node
of a real cluster would be: an attached run's workers can import fedshield only from the
runtime environment the driver ships. Only this head's processes are ever ended (those naming
its directory, and its Ray Client server): never ``ray stop``, which would end every Ray
process of the user on the machine.
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
from typing import Any

from fedshield.ray_session import kill_session

RAY = str(Path(sys.executable).parent / "ray")

# Prints the address of the cluster a bare ray.init() joins, the pids of its drivers, and its own.
_PROBE = """
import json, os, sys, ray
ray.init(address=sys.argv[1] if len(sys.argv) > 1 else None, logging_level="ERROR")
jobs = ray._private.state.jobs()
print(json.dumps({"gcs": ray.get_runtime_context().gcs_address,
                  "drivers": [j["DriverPid"] for j in jobs], "self": os.getpid()}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def probe(env: dict[str, str], *address: str) -> dict[str, Any]:
    """What a driver started in ``env`` (joining ``address`` if given) finds: ``gcs``, the
    head's ``drivers`` (every job's driver pid, this probe's own included) and ``self``."""
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


@contextlib.contextmanager
def loopback_head(num_cpus: int = 2) -> Iterator[tuple[str, dict[str, str]]]:
    """A Ray head on loopback with ``num_cpus`` CPUs, in its own temporary directory; always
    stopped, even on failure. Yields its address and the environment in which a bare
    ``ray.init()`` finds it."""
    temp = Path(tempfile.mkdtemp(prefix="fsh-", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, "RAY_TMPDIR": str(temp), "TMPDIR": str(temp)}
    env.pop("RAY_ADDRESS", None)
    env.pop("PYTHONPATH", None)
    address = f"127.0.0.1:{_free_port()}"
    try:
        subprocess.run(
            [RAY, "start", "--head", f"--port={address.split(':')[1]}"]
            + ["--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}"]
            + ["--include-dashboard=false", "--disable-usage-stats"],
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

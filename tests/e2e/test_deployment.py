"""The same apps on Flower's Deployment Engine: a SuperLink, two SuperNodes, ``flwr run``.

Everything on loopback with free ports, in insecure mode (TLS is documented in
docs/scaling.md). Keys are split as a deployment hands them out: the server's directory holds
its pair and the clients' public keys, each node's its own private key and the server's public
key, so every signature crosses a process boundary with keys from files. The processes are
started without this repository on their path: the code reaches them in the app bundle that
``flwr run`` sends. Every process the test starts (and their children, the ServerApp and
ClientApp processes) is ended, even on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.crypto.keys import generate_keys
from tests.e2e._processes import REPO, descendants, left_after

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
STARTUP_S = 180.0
"""How long the SuperLink may take to listen (its imports on a loaded 2-core machine)."""

SCENARIO = """
name = "deployed"
seed = 42
rounds = 2
output = "{output}"
[data]
dataset = "digits"
num_clients = 2
[model]
name = "mlp"
[train]
local_epochs = 1
learning_rate = 0.1
[defense]
aggregator = "fedavg"
[integrity]
enabled = true
keys_dir = "{keys_dir}"
[simulation]
num_cpus = 1
round_timeout = 300
"""


@dataclass
class Federation:
    control: str
    """The SuperLink's Control API address (what ``flwr run`` talks to)."""
    env: dict[str, str]
    root: Path


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _split_keys(root: Path) -> tuple[Path, list[Path]]:
    keys = root / "keys"
    generate_keys(keys, num_clients=2)
    server = root / "server-keys"
    server.mkdir()
    for name in ("server_0000.key", "server_0000.pub", "client_0000.pub", "client_0001.pub"):
        shutil.copy2(keys / name, server / name)
    nodes = []
    for p in range(2):
        node = root / f"node{p}-keys"
        node.mkdir()
        for name in ("server_0000.pub", f"client_{p:04d}.key"):
            shutil.copy2(keys / name, node / name)
        nodes.append(node)
    shutil.rmtree(keys)  # nobody holds the full set any more
    return server, nodes


def _await_listening(addresses: list[str], process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until every ``host:port`` accepts connections (the SuperLink is up).

    ``flwr run`` against a SuperLink still starting prints "Connection to the SuperLink is
    unavailable" and exits 0, so the test must not call it before then: on a loaded machine the
    SuperLink's start took longer than the test's first step.
    """
    deadline = time.monotonic() + STARTUP_S
    for address in addresses:
        host, port = address.rsplit(":", 1)
        while True:
            assert process.poll() is None, f"the SuperLink exited:\n{log.read_text()[-3000:]}"
            try:
                socket.create_connection((host, int(port)), timeout=1.0).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"{address} not up after {STARTUP_S:.0f} s"
                time.sleep(0.2)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: the app subprocesses end with it
        )


def _end(processes: list[subprocess.Popen[bytes]]) -> set[int]:
    """SIGTERM every group, SIGKILL what is left after 10 s; returns the pids still alive."""
    pids = {p.pid for p in processes}
    for p in processes:
        pids |= descendants(p.pid)
    for p in processes:
        with suppress(OSError):
            os.killpg(p.pid, signal.SIGTERM)
    for pid in left_after(pids, 10.0):
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for p in processes:
        with suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)
    return left_after(pids, 5.0)


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[tuple[Federation, Path, list[Path]]]:
    server_keys, node_keys = _split_keys(tmp_path)
    serverappio, fleet, control, *clientappio = (f"127.0.0.1:{p}" for p in _free_ports(5))
    env = {
        **os.environ,
        "FLWR_HOME": str(tmp_path / "flwr"),
        "FLWR_TELEMETRY_ENABLED": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
        # The SuperLink and SuperNodes start flower-superexec, flwr-serverapp, flwr-clientapp
        # by name: the environment's scripts must be on the path.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("PYTHONPATH", None)
    env.pop("FEDSHIELD_CLIENT_TRUST", None)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        link = [str(BIN / "flower-superlink"), "--insecure"]
        link += ["--serverappio-api-address", serverappio, "--fleet-api-address", fleet]
        link += ["--control-api-address", control]
        processes.append(_start(link, env, tmp_path / "superlink.log"))
        _await_listening([serverappio, fleet, control], processes[0], tmp_path / "superlink.log")
        for p, keys in enumerate(node_keys):
            node = [str(BIN / "flower-supernode"), "--insecure", "--superlink", fleet]
            node += ["--clientappio-api-address", clientappio[p]]
            node += ["--node-config", f"partition-id={p} keys-dir='{keys}'"]
            processes.append(_start(node, env, tmp_path / f"supernode{p}.log"))
        yield Federation(control, env, tmp_path), server_keys, node_keys
    finally:
        left = _end(processes)
        assert not left, f"processes left running: {sorted(left)}"


def _logs(root: Path) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in root.glob("*.log"))


def test_two_signed_rounds_through_flwr_run_and_the_ledger_verifies(
    federation: tuple[Federation, Path, list[Path]],
) -> None:
    fed, server_keys, _ = federation
    output = fed.root / "runs"
    scenario = fed.root / "deployed.toml"
    scenario.write_text(SCENARIO.format(output=output, keys_dir=server_keys))

    flwr = [str(BIN / "flwr"), "run", str(REPO), "local-deployment", "--stream"]
    flwr += ["--run-config", f"scenario='{scenario}'"]
    flwr += ["--federation-config", f"address='{fed.control}'"]
    done = subprocess.run(flwr, env=fed.env, capture_output=True, text=True, timeout=480)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + _logs(fed.root)

    # flwr run exits 0 even when it could not reach the SuperLink: show why if no run dir.
    runs = sorted(output.iterdir()) if output.exists() else []
    assert len(runs) == 1, done.stdout[-3000:] + done.stderr[-3000:] + _logs(fed.root)
    (run_dir,) = runs
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["last_round"]) == ("finished", 2), _logs(fed.root)
    assert summary["integrity"]["keys"] == f"files in {server_keys}"
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [0, 1, 2]
    assert metrics[-1]["accuracy"] > metrics[0]["accuracy"] + 0.3
    # Both nodes' signed updates passed the gate in both rounds.
    assert [m["num_accepted"] for m in metrics[1:]] == [2, 2]

    # The ledger holds the initial model (round 0) and both rounds; the head is checked against
    # the server's public key pinned from its own directory.
    verify = [sys.executable, "-m", "fedshield.cli", "verify", str(run_dir)]
    verify += ["--server-key", str(server_keys / "server_0000.pub")]
    verified = subprocess.run(
        verify, env={**fed.env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ok: 3 rounds, head ")

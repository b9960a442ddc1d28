"""A run attaches to a Ray cluster only when given its address, and then runs on it.

The adversary of the second test: a Ray head someone started on the same machine (``ray start
--head``). A bare ``ray.init()`` finds it through the session file it leaves in Ray's temporary
directory, and Flower's ``num_cpus`` is then refused inside Flower's engine, which hung the run.

The head (``tests/e2e/_ray_head.py``) runs without this repository on its path, as a node of a
real cluster would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e._processes import start_run
from tests.e2e._ray_head import probe

pytestmark = pytest.mark.e2e


def test_a_run_without_an_address_does_not_join_a_running_head(
    tmp_path: Path, ray_head: tuple[str, dict[str, str]]
) -> None:
    address, env = ray_head
    # The check has teeth: in this environment a bare ray.init() joins the head.
    # (Ray reports the head by the host's address, not loopback: compare the port.)
    assert str(probe(env)["gcs"]).rsplit(":", 1)[1] == address.rsplit(":", 1)[1]

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
    assert run.pid not in probe(env, address)["drivers"]


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
    assert run.pid in probe(env, address)["drivers"]

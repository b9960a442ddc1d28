"""Injected client faults on Flower + Ray: the run goes on without the failed clients, or stops
loudly when none is left (issue 15, items 2 and 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.faults import draw_fault
from common.results import read_jsonl
from fedshield.cli import main
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario

pytestmark = pytest.mark.e2e

TINY = [
    "data.num_clients=5",
    "train.local_epochs=1",
    "simulation.num_cpus=1",
    "simulation.handshake_timeout=120",
]


def test_crashing_and_hanging_clients_are_recorded_and_every_round_completes(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # 30% crash, 10% hang past a 20 s round timeout; seed 42 draws both in three rounds.
    faults = ["simulation.faults={crash=0.3, hang=0.1}", "simulation.round_timeout=20"]
    scenario = load_scenario("quickstart", [*TINY, "rounds=3", f'output="{tmp_path}"', *faults])
    rows = read_jsonl(run_scenario(scenario).run_dir / "metrics.jsonl")
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    expected: dict[int, dict[str, str]] = {}
    for row in rows[1:]:
        draws = {p: draw_fault(scenario.simulation.faults, 42, row["round"], p) for p in range(5)}
        expected[row["round"]] = {
            str(p): "injected crash (simulation.faults.crash = 0.3)"
            if fault == "crash"
            else "no reply within the round timeout (20s)"
            for p, fault in draws.items()
            if fault is not None
        }
        assert row["failures"] == expected[row["round"]]
        assert row["num_accepted"] == 5 - len(expected[row["round"]]) and row["skipped"] is None
    assert {
        "injected crash (simulation.faults.crash = 0.3)",
        "no reply within the round timeout (20s)",
    } == {
        reason for failures in expected.values() for reason in failures.values()
    }  # both kinds happened
    assert rows[-1]["accuracy"] > rows[0]["accuracy"] + 0.2  # the others trained
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: round {r}: client {p} failed: {reason}"
        for r, failures in expected.items()
        for p, reason in failures.items()
    ]


def test_a_federation_where_every_client_fails_exits_non_zero_with_one_error_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = [*TINY, "rounds=3", f'output="{tmp_path}"', "simulation.faults.crash=1.0"]
    code = main(["run", "quickstart", *(a for s in settings for a in ("--set", s))])
    err = capfd.readouterr().err.splitlines()
    assert code == 2
    assert [line for line in err if not line.startswith("warning:")] == [
        "error: 3 consecutive rounds failed (simulation.max_failed_rounds = 3); round 3: "
        "no update was accepted (0 accepted; 5 failed, 0 rejected)"
    ]
    assert len(err) == 1 + 15  # one warning per client per round
    (run_dir,) = tmp_path.iterdir()
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    assert all(r["num_failures"] == 5 and r["skipped"] for r in rows[1:])

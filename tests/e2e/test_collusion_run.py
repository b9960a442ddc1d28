"""A colluding attack through the real server on Flower + Ray: forged, signed rows reach the rule.

Adversary: two of five clients collude with IPM (Xie et al. 2019): each sends -0.5 x the mean of
the honest updates of the round, signed with its own key, so the integrity gate accepts it and
only the aggregation rule (coordinate-wise median) stands between it and the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.results import read_jsonl
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario

pytestmark = pytest.mark.e2e


def test_ipm_colluders_are_accepted_by_the_gate_and_median_still_trains(tmp_path: Path) -> None:
    overrides = [
        "data.num_clients=5",
        "rounds=2",
        "train.local_epochs=1",
        "simulation.num_cpus=1",
        f'output="{tmp_path}"',
        'defense.aggregator="median"',
        'attack.type="ipm"',
        "attack.malicious=2",
        "integrity.enabled=true",
    ]
    run_dir = run_scenario(load_scenario("quickstart", overrides)).run_dir
    rows = read_jsonl(run_dir / "metrics.jsonl")
    summary = json.loads((run_dir / "summary.json").read_text())
    malicious = summary["malicious_clients"]
    assert len(malicious) == 2
    assert [r["round"] for r in rows] == [0, 1, 2]
    for row in rows[1:]:
        assert row["sampled"] == [0, 1, 2, 3, 4] and row["sampled_malicious"] == malicious
        # Every forged reply carried a valid signature of its own client: nothing rejected.
        assert (row["num_accepted"], row["num_rejected"], row["skipped"]) == (5, 0, None)
        assert row["attack"] == {"epsilon": 0.5}  # IPM's own diagnostics reach the metrics
    gate = [json.loads(line) for line in (run_dir / "integrity.jsonl").read_text().splitlines()]
    assert [g["accepted"] for g in gate] == [5, 5]
    # The median of three honest and two forged rows follows the honest majority.
    assert rows[-1]["accuracy"] > rows[0]["accuracy"] + 0.2

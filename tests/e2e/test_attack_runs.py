"""Attacks through the whole simulation: model replacement's boosted backdoor, and a colluding
attack whose per-round diagnostics reach metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.results import read_jsonl
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario

pytestmark = pytest.mark.e2e


def test_model_replacement_plants_the_backdoor_in_one_round(tmp_path: Path) -> None:
    # 4 clients, one of them the attacker in round 3 only; gamma = n / eta = 4.
    scenario = load_scenario(
        "attack_model_replacement",
        [
            "data.num_clients=4",
            "rounds=3",
            "attack.start_round=3",
            "attack.end_round=3",
            "attack.params.scaling.gamma=4.0",
            f'output="{tmp_path}"',
        ],
    )
    run_dir = run_scenario(scenario).run_dir
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    # Before the attack the model says "0" on triggered images no more than on clean ones ...
    assert all(r["attack_success_above_baseline"] < 0.1 for r in rows[1:3])
    # ... after the boosted backdoor round it does, far above its untriggered baseline
    # (seed 42: rate 1.000, baseline 0.037; the same backdoor with gamma = 1 reaches only 0.173).
    last = rows[-1]
    assert last["attack_success_rate"] > 0.8 and last["attack_success_baseline"] < 0.2
    assert last["attack_success_above_baseline"] == pytest.approx(
        last["attack_success_rate"] - last["attack_success_baseline"]
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["final_attack_success_above_baseline"] == last["attack_success_above_baseline"]


def test_fang_diagnostics_reach_the_metrics(tmp_path: Path) -> None:
    scenario = load_scenario(
        "quickstart",
        [
            "data.num_clients=5",
            "rounds=2",
            "train.local_epochs=1",
            "simulation.num_cpus=1",
            'attack.type="fang"',
            "attack.malicious=1",
            'defense.aggregator="median"',
            f'output="{tmp_path}"',
        ],
    )
    rows = read_jsonl(run_scenario(scenario).run_dir / "metrics.jsonl")
    for row in rows[1:]:
        # The Krum construction is never selected by the median: lambda falls below 1e-5.
        assert row["attack"]["selected"] == 0.0 and row["attack"]["lambda"] < 1e-5
        assert row["attack"]["forged_norm"] < 1e-3 < row["attack"]["honest_mean_norm"]

"""The few end-to-end simulations CI runs: tiny federations on Flower + Ray, real training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.results import read_jsonl
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario

pytestmark = pytest.mark.e2e

TINY = [
    "data.num_clients=3",
    "rounds=2",
    "train.local_epochs=1",
    "simulation.num_cpus=1",
]


def _run(tmp_path: Path, *extra: str) -> Path:
    scenario = load_scenario("quickstart", [*TINY, f'output="{tmp_path}"', *extra])
    return run_scenario(scenario).run_dir


def test_same_scenario_and_seed_give_identical_metrics(tmp_path: Path) -> None:
    first, second = _run(tmp_path / "a"), _run(tmp_path / "b")
    rows_a, rows_b = read_jsonl(first / "metrics.jsonl"), read_jsonl(second / "metrics.jsonl")
    assert [r["round"] for r in rows_a] == [0, 1, 2]
    assert [r["accuracy"] for r in rows_a] == [r["accuracy"] for r in rows_b]
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]
    # The federation really trained: accuracy rose from the random initial model.
    assert rows_a[-1]["accuracy"] > rows_a[0]["accuracy"] + 0.2
    assert all(r["num_replies"] == 3 for r in rows_a[1:])

    summary = json.loads((first / "summary.json").read_text())
    assert summary["final_accuracy"] == rows_a[-1]["accuracy"]
    assert sum(summary["num_examples_per_client"]) == 1437
    assert (
        summary["partition_hash"]
        == json.loads((second / "summary.json").read_text())["partition_hash"]
    )
    assert set(summary["package_versions"]) >= {"flwr", "tensorflow", "ray", "numpy"}
    assert (first / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((first / "scenario.json").read_text())["seed"] == 42


def test_fltrust_trains_through_a_sign_flipping_client(tmp_path: Path) -> None:
    # One of three clients sends -4x its update. FLTrust's server trains on its own root set
    # each round (server/root_reference.py) and gives the flipped update trust 0. Without the
    # root update wired through, every round would be skipped and accuracy would not move.
    run_dir = _run(
        tmp_path,
        'defense.aggregator="fltrust"',
        "defense.root_size=200",
        'attack.type="sign_flip"',
        "attack.params={scale=4.0}",
        "attack.malicious=1",
    )
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert all(r.get("skipped") is None for r in rows[1:])
    assert rows[-1]["accuracy"] > rows[0]["accuracy"] + 0.2

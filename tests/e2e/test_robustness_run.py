"""One tiny federation with every robustness option on: what the run files say.

3 clients (one a sign flipper), 2 rounds, mixed adversarial training, the FGSM/PGD probe every
round on 60 test images, distillation at the end. The figures themselves are measured in
docs/robustness.md; this checks that they reach metrics.jsonl, summary.json, clients.jsonl and
the plots, with the poisoner marked only there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.results import read_json, read_jsonl
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scenario = load_scenario(
        "robustness_mixed",
        [
            "rounds=2",
            "data.num_clients=3",
            "train.local_epochs=1",
            "robustness.every=1",
            "robustness.num_examples=60",
            "robustness.steps=3",
            "robustness.distillation.epochs=2",
            'attack.type="sign_flip"',
            "attack.malicious=1",
            f'output="{tmp_path_factory.mktemp("robustness")}"',
        ],
    )
    return run_scenario(scenario).run_dir


def test_robust_accuracy_sits_beside_clean_accuracy_every_round(run_dir: Path) -> None:
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in rows] == [0, 1, 2]
    for row in rows:  # PGD-3 need not beat FGSM on every example of a half-trained model
        assert 0.0 <= row["robust_accuracy_pgd"] <= 1.0
        assert 0.0 <= row["robust_accuracy_fgsm"] <= 1.0
    assert rows[-1]["robust_accuracy_pgd"] < rows[-1]["accuracy"] - 0.1
    summary = read_json(run_dir / "summary.json")
    assert summary["final_robust_accuracy_pgd"] == rows[-1]["robust_accuracy_pgd"]
    distilled = summary["distillation"]
    assert distilled["student"]["num_params"] < distilled["teacher"]["num_params"]
    assert {"auc", "advantage"} <= set(distilled["student"]["membership_inference"])
    assert (run_dir / "accuracy.png").stat().st_size > 0


def test_clients_jsonl_follows_every_client_and_marks_the_poisoner(run_dir: Path) -> None:
    summary = read_json(run_dir / "summary.json")
    rows = read_jsonl(run_dir / "clients.jsonl")
    assert [(r["round"], r["partition"]) for r in rows] == [
        (k, p) for k in (1, 2) for p in range(3)
    ]
    assert {r["partition"] for r in rows if r["malicious"]} == set(summary["malicious_clients"])
    for row in rows:
        assert row["status"] == "accepted" and row["update_norm"] > 0
    bad = [r["cosine_to_aggregate"] for r in rows if r["malicious"]]
    good = [r["cosine_to_aggregate"] for r in rows if not r["malicious"]]
    assert max(bad) < min(good)  # a sign flip points away from the FedAvg step
    assert (run_dir / "clients.png").stat().st_size > 0

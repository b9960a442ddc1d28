"""SecAgg+ through the whole simulation: the server gets FedAvg's result without the updates.

The same seeded federation (3 clients, 2 rounds, no DP: training is deterministic) runs with
Flower's SecAgg+ and without. The masked sum unmasks to the weighted mean, so the two global
models differ only by SecAgg+'s quantization (2 * 8 / 2^22 ~ 4e-6 per weight): the test-set
accuracy is the same and the loss agrees to 1e-4.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.results import read_json, read_jsonl
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario

pytestmark = pytest.mark.e2e


def _run(tmp_path: Path, secure: bool) -> list[dict[str, float]]:
    scenario = load_scenario(
        "secure_aggregation",
        [
            f"secure_aggregation.enabled={str(secure).lower()}",
            "data.num_clients=3",
            "rounds=2",
            f'output="{tmp_path / str(secure)}"',
        ],
    )
    result = run_scenario(scenario)
    assert read_json(result.run_dir / "summary.json")["status"] == "finished"
    return read_jsonl(result.run_dir / "metrics.jsonl")


def test_secagg_gives_fedavgs_model(tmp_path: Path) -> None:
    plain, secure = _run(tmp_path, False), _run(tmp_path, True)
    assert [r["round"] for r in secure] == [0, 1, 2]
    for a, b in zip(plain, secure, strict=True):
        assert b["accuracy"] == a["accuracy"]
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)
    assert secure[-1]["accuracy"] > secure[0]["accuracy"] + 0.2  # it did learn
    assert secure[1]["num_accepted"] == 3 and secure[1]["sampled"] == [0, 1, 2]

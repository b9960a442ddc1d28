"""The curious server through the whole simulation: ``inversion_updates`` on Flower + Ray.

53 clients with one digit each, batch 1, one local step; the server inverts clients 0 and 1 in
round 1. Measured by hand with the shipped settings (seed 1): PSNR 51-55 dB for these two.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from common.results import read_json
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario

pytestmark = pytest.mark.e2e


def test_the_server_reconstructs_one_step_updates(tmp_path: Path) -> None:
    scenario = load_scenario(
        "inversion_updates",
        ["inversion.clients=[0, 1]", "inversion.iterations=400", f'output="{tmp_path}"'],
    )
    result = run_scenario(scenario)
    inversion = read_json(result.run_dir / "summary.json")["inversion"]
    assert [a["client"] for a in inversion["updates"]] == [0, 1]
    for attack in inversion["updates"]:
        assert attack["local_steps"] == 1 and attack["label_accuracy"] == 1.0
        assert attack["psnr_mean"] > 20.0 > attack["random_psnr"] + 10.0
    assert (result.run_dir / "inversion_updates.png").stat().st_size > 1000

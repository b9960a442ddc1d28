"""Many virtual clients, few sampled, on Flower + Ray: the server addresses the sampled nodes
through the engine's own registry, signed for each recipient, and every reply is accepted as
its own partition (``server/handshake.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.results import read_jsonl
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario
from server.round import sample_partitions

pytestmark = pytest.mark.e2e


def test_three_of_five_hundred_signed_clients_train_and_are_all_accepted(tmp_path: Path) -> None:
    scenario = load_scenario(
        "quickstart",
        [
            "data.dataset=synthetic_mnist",
            "data.num_clients=500",
            "clients_per_round=3",
            "rounds=2",
            "train.local_epochs=1",
            "integrity.enabled=true",
            "simulation.handshake_timeout=120",
            f'output="{tmp_path}"',
        ],
    )
    rows = read_jsonl(run_scenario(scenario).run_dir / "metrics.jsonl")
    for row in rows[1:]:
        # Signed broadcasts bound to the node the registry names: a wrong node would refuse
        # (unauthentic broadcast) or answer for another partition (rejected as malformed).
        assert row["sampled"] == sample_partitions(scenario, range(500), row["round"])
        assert row["num_accepted"] == 3 and row["num_rejected"] == 0
        assert row["num_refused"] == 0 and row["failures"] == {}

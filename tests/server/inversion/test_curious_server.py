"""The curious server inside the round: it attacks only the chosen clients and rounds.

Replies are real client training (``train_locally``) on the shipped ``inversion_updates``
scenario (one digit per client, batch 1, one step); the observer is called as the strategy
calls it. No Ray.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.data.shards import client_shard, dataset_of
from common.learning.training import compiled_model, train_locally
from common.protocol import TrainReply
from scenarios.loader import load_scenario
from server.app import initial_weights
from server.inversion.observer import CuriousServer


def _reply(scenario, base, partition_id: int) -> TrainReply:  # type: ignore[no-untyped-def]
    dataset = dataset_of(scenario)
    x, y = client_shard(scenario, partition_id)
    model = compiled_model(scenario, dataset.input_shape, dataset.num_classes, dp=False)
    out = train_locally(model, base, x, y, scenario=scenario, seed=partition_id, dp=False)
    return TrainReply(
        partition_id=partition_id,
        node_id=100 + partition_id,
        server_round=1,
        arrays=out.weights,
        num_examples=len(y),
        local_steps=out.local_steps,
    )


def test_chosen_clients_are_reconstructed_and_scored(tmp_path: Path) -> None:
    scenario = load_scenario(
        "inversion_updates",
        ["inversion.clients=[0, 1, 9]", "inversion.rounds=[1]", "inversion.iterations=300"],
    )
    dataset = dataset_of(scenario)
    base = initial_weights(scenario, dataset.input_shape, dataset.num_classes)
    curious = CuriousServer(scenario, dataset, tmp_path)
    replies = [_reply(scenario, base, p) for p in (0, 1, 2)]  # client 9 was not sampled
    curious(2, replies, base)  # a round not chosen: nothing happens
    assert curious.attacks == []
    curious(1, replies, base)
    summary = curious.summary(base, accepted=[0, 1, 2])
    assert [a["client"] for a in summary["updates"]] == [0, 1]
    assert summary["not_sampled"] == [{"round": 1, "client": 9}]
    for attack in summary["updates"]:
        assert attack["local_steps"] == 1
        assert attack["label_accuracy"] == 1.0
        assert attack["psnr_mean"] > 20.0 > attack["random_psnr"] + 10.0
        assert attack["ssim_mean"] > 0.9
    assert (tmp_path / "inversion_updates.png").stat().st_size > 1000
    assert "classes" not in summary


def test_class_representatives_write_the_figures(tmp_path: Path) -> None:
    scenario = load_scenario(
        "inversion_classes", ["inversion.class_iterations=20", "data.num_clients=2"]
    )
    dataset = dataset_of(scenario)
    base = initial_weights(scenario, dataset.input_shape, dataset.num_classes)
    summary = CuriousServer(scenario, dataset, tmp_path).summary(base, accepted=[0])
    rows = summary["classes"]["per_class"]
    assert [r["class"] for r in rows] == list(range(10))
    for r in rows:
        assert -1.0 <= r["ssim_to_class_mean"] <= 1.0 and 0.0 < r["confidence"] < 1.0
        assert -1.0 <= r["ssim_to_other_means"] <= 1.0
    for name in ("inversion_classes.png", "inversion_similarity.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert summary["updates"] == [] and not (tmp_path / "inversion_updates.png").exists()
    assert np.isfinite(summary["classes"]["ssim_mean"])

"""One tiny DP-SGD federation on Flower + Ray: the privacy accounting seen from the run files.

4 clients, 2 sampled per round, 3 rounds. With seed 1 the seeded sampling picks partitions
{1, 2}, {2, 3}, {2, 3}: client 2 trains 3 times, client 3 twice, client 1 once and client 0
never, so every claim below (per-client round counts, a silent client, growth) is exercised.
(With 3 clients and 2 per round, a client that never trains forces the other two to train in
every round, so unequal counts and a silent client cannot both occur: hence 4 clients.)

The DP noise comes from OS entropy (``dp.reproducible_noise`` is off), so no figure here
depends on it; tests/dp/test_dp_secret_noise.py plays the server that tries to regenerate it.
The run files are strict JSON, and the replies carry no training loss.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from common.results import read_json, read_jsonl
from common.seeding import derive_rng
from fedshield.runner import run_scenario
from scenarios.loader import load_scenario
from server.privacy import TRAIN_LOSS_WITHHELD
from server.privacy_accounting import ClientPrivacyLedger

pytestmark = pytest.mark.e2e

SEED = 1
ROUNDS = 3
NUM_CLIENTS = 4
PER_ROUND = 2
BATCH = 32
EXPECTED_SAMPLES = [[1, 2], [2, 3], [2, 3]]


def _sampled(seed: int, server_round: int) -> list[int]:
    # The draw of server.strategy.FedshieldStrategy._sample, restated so the test knows who
    # trained without trusting the code under test; the first assertion pins the premise.
    chosen = derive_rng(seed, "sample", server_round).choice(
        range(NUM_CLIENTS), size=PER_ROUND, replace=False
    )
    return sorted(int(p) for p in chosen)


def _run(output: Path) -> Path:
    scenario = load_scenario(
        "dp_local",
        [
            f"seed={SEED}",
            f"rounds={ROUNDS}",
            f"data.num_clients={NUM_CLIENTS}",
            f"clients_per_round={PER_ROUND}",
            "train.local_epochs=1",
            f"train.batch_size={BATCH}",
            "dp.noise_multiplier=1.0",
            "simulation.num_cpus=1",
            f'output="{output}"',
        ],
    )
    return run_scenario(scenario).run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("dp"))


def test_sampling_premise() -> None:
    assert [_sampled(SEED, r) for r in range(1, ROUNDS + 1)] == EXPECTED_SAMPLES


def test_epsilon_grows_every_round_in_metrics(run_dir: Path) -> None:
    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in rows] == [0, 1, 2, 3]
    assert "epsilon_max" not in rows[0]  # the initial model released nothing
    trained = rows[1:]
    assert [r["num_accepted"] for r in trained] == [PER_ROUND] * ROUNDS
    for key in (
        "epsilon_max",
        "epsilon_poisson_rdp_mean",
        "epsilon_shuffle_max",
        "epsilon_shuffle_mean",
    ):
        values = [r[key] for r in trained]
        # Client 2 trains every round, so even the maximum must rise each time.
        assert 0.0 < values[0] < values[1] < values[2], (key, values)
    # Poisson batches: the proven figure is the Poisson RDP one, and it is far below the
    # no-amplification once-per-epoch figure.
    assert all(
        r["epsilon_max"] == r["epsilon_poisson_rdp_max"] < r["epsilon_shuffle_max"] for r in trained
    )


def test_summary_counts_exactly_the_rounds_each_client_trained(run_dir: Path) -> None:
    summary = read_json(run_dir / "summary.json")
    privacy = summary["privacy"]
    assert privacy["mode"] == "local" and privacy["proven_guarantee"] == "poisson_rdp"
    times_sampled = Counter(p for r in range(1, ROUNDS + 1) for p in _sampled(SEED, r))
    rows = {row["partition_id"]: row for row in privacy["clients"]}
    # Client 0 never trained: it has no row, hence no epsilon at all.
    assert sorted(rows) == [1, 2, 3] and 0 not in rows
    assert (
        {p: row["rounds"] for p, row in rows.items()} == {1: 1, 2: 3, 3: 2} == dict(times_sampled)
    )

    # Recompute each client's epsilon from its shard size alone: q = b / n_k and ceil(n_k / b)
    # Poisson steps per round (one local epoch), composed over the rounds it trained.
    delta = privacy["delta"]
    for partition_id, row in rows.items():
        n = summary["num_examples_per_client"][partition_id]
        steps = math.ceil(n / BATCH)
        assert row["local_steps"] == steps * row["rounds"]
        ledger = ClientPrivacyLedger()
        for server_round in range(1, row["rounds"] + 1):
            ledger.record(
                partition_id,
                server_round=server_round,
                steps=steps,
                epochs=1,
                sampling_rate=BATCH / n,
                noise_multiplier=1.0,
                microbatch_size=1,
            )
        for method in ("poisson_rdp", "shuffle"):
            assert row[f"epsilon_{method}"] == pytest.approx(
                ledger.epsilon(partition_id, delta, method=method), rel=1e-12
            )
    final = read_jsonl(run_dir / "metrics.jsonl")[-1]
    assert final["epsilon_max"] == max(row["epsilon_poisson_rdp"] for row in rows.values())
    # The mean of the metrics line counts the silent client with epsilon 0.
    assert final["epsilon_poisson_rdp_mean"] == pytest.approx(
        sum(row["epsilon_poisson_rdp"] for row in rows.values()) / NUM_CLIENTS, rel=1e-12
    )


def test_run_files_are_strict_json_and_withhold_the_training_loss(run_dir: Path) -> None:
    def refuse(token: str) -> object:
        raise ValueError(f"non-standard JSON token {token}")

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line, parse_constant=refuse) for line in lines]
    summary = json.loads((run_dir / "summary.json").read_text(), parse_constant=refuse)
    for row in rows[1:]:
        assert row["train_loss"] is None and row["train_loss_reason"] == TRAIN_LOSS_WITHHELD
        assert "epsilon_void" not in row
    assert "epsilon_void" not in summary["privacy"]

"""What a DP run writes, without Ray: figures, the void mark and the withheld loss, strict JSON."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from common.results import read_jsonl
from scenarios.loader import load_scenario
from server.privacy import EPSILON_VOID, TRAIN_LOSS_WITHHELD, PrivacyTracker
from server.privacy_accounting import central_epsilon
from server.round import RoundResult, TrainingRecord
from server.run_log import RunLog


def _strict(text: str) -> object:
    def refuse(token: str) -> object:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _trained(partition_id: int) -> TrainingRecord:
    # Who trained and how, as the round keeps it: 10 local steps at q = 32 / 144.
    return TrainingRecord(partition_id, 10, 32 / 144)


def _round(tmp_path: Path, *overrides: str) -> tuple[dict[str, object], str, PrivacyTracker]:
    scenario = load_scenario("dp_local", ["seed=3", "data.num_clients=4", *overrides])
    tracker = PrivacyTracker(scenario, malicious=frozenset())
    # A DP round's replies carry no train-loss field, so the round's mean loss is NaN.
    report = RoundResult(
        server_round=1,
        started=0.0,
        sampled=(0, 1),
        num_replies=2,
        honest_replies=(_trained(0), _trained(1)),
    )
    stream = io.StringIO()
    log = RunLog(tmp_path, scenario, frozenset(), stream=stream)
    log.record(1, {"accuracy": 0.5, "loss": math.nan}, report, tracker.after_round(1, report))
    line = (tmp_path / "metrics.jsonl").read_text().splitlines()[-1]
    row = _strict(line)
    assert isinstance(row, dict)
    return row, stream.getvalue(), tracker


def test_default_dp_round_withholds_the_loss_and_is_strict_json(tmp_path: Path) -> None:
    row, progress, tracker = _round(tmp_path)
    assert row["train_loss"] is None and row["train_loss_reason"] == TRAIN_LOSS_WITHHELD
    assert row["loss"] is None and row["loss_reason"] == "non-finite: nan"
    assert "epsilon_void" not in row and "VOID" not in progress
    assert row["epsilon_max"] == row["epsilon_poisson_rdp_max"] > 0
    assert f"eps {row['epsilon_max']:.2f}" in progress
    assert "epsilon_void" not in tracker.summary()
    assert math.isnan(read_jsonl(tmp_path / "metrics.jsonl")[0]["loss"])


def test_reproducible_noise_marks_every_epsilon_void(tmp_path: Path) -> None:
    row, progress, tracker = _round(
        tmp_path, "dp.reproducible_noise=true", "dp.report_train_loss=true"
    )
    assert row["epsilon_void"] == EPSILON_VOID
    assert f"eps {row['epsilon_max']:.2f} VOID(seed)" in progress
    assert tracker.summary()["epsilon_void"] == EPSILON_VOID
    # Opted in: the strategy's own average stays (NaN here: the stub replies carry no loss).
    assert row["train_loss"] is None and row["train_loss_reason"] == "non-finite: nan"


@pytest.mark.parametrize("rounds", [1, 3])
def test_central_round_reports_both_adjacencies_replace_one_leading(
    tmp_path: Path, rounds: int
) -> None:
    scenario = load_scenario("dp_central", ["dp.reproducible_noise=true"])
    tracker = PrivacyTracker(scenario, malicious=frozenset())
    for server_round in range(1, rounds + 1):
        figures = tracker.after_round(server_round, RoundResult(server_round, 0.0, ()))
    expected = {
        a: central_epsilon(
            rounds=rounds,
            clients_per_round=10,
            num_clients=10,
            noise_multiplier=1.0,
            delta=1e-5,
            adjacency=a,
        )
        for a in ("replace_one", "add_remove")
    }
    assert figures["epsilon_central_replace_one"] == expected["replace_one"]
    assert figures["epsilon_central_add_remove"] == expected["add_remove"]
    assert figures["epsilon_max"] == expected["replace_one"] > expected["add_remove"]
    assert figures["epsilon_void"] == EPSILON_VOID and figures["train_loss"] is None
    summary = tracker.summary()
    assert summary["headline_adjacency"] == "replace_one"
    assert summary["epsilon_central_replace_one"] == expected["replace_one"]

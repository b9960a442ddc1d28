"""metrics.jsonl, the progress line and summary.json, from a round's result (the metrics layer)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from common.results import read_jsonl
from scenarios.loader import load_scenario
from server.round import RoundResult
from server.run_log import RunLog

SCENARIO = load_scenario("quickstart")
RESULT = RoundResult(
    server_round=1,
    started=0.0,
    sampled=(0, 5, 7, 9),
    tampered=(9,),
    num_replies=3,
    failures={0: "boom: the client raised"},
    refused={7: "unauthentic_broadcast"},
    rejected={9: ("digest_mismatch",)},
    accepted=(0, 5),
    train_loss=0.25,
    attack={"lambda": 0.5},
)


def test_each_round_records_who_was_sampled_who_was_malicious_and_what_happened(
    tmp_path: Path,
) -> None:
    stream, warnings = io.StringIO(), io.StringIO()
    log = RunLog(tmp_path, SCENARIO, frozenset({5, 9}), stream=stream, warnings=warnings)
    initial = log.record(0, {"accuracy": 0.1, "loss": 2.3}, None, {})
    row = log.record(1, {"accuracy": 0.5, "loss": 1.2}, RESULT, {"epsilon_max": 1.5})
    assert initial == {"round": 0, "accuracy": 0.1, "loss": 2.3, "num_replies": 0, "seconds": 0.0}
    expected = {
        "round": 1,
        "accuracy": 0.5,
        "loss": 1.2,
        "num_sampled": 4,
        "sampled": [0, 5, 7, 9],
        "sampled_malicious": [5, 9],
        "malicious_sampled": 2,
        "num_replies": 3,
        "num_failures": 1,
        "failures": {"0": "boom: the client raised"},
        "num_refused": 1,
        "num_accepted": 2,
        "num_rejected": 1,
        "rejections": {"9": ["digest_mismatch"]},
        "refusals": {"7": "unauthentic_broadcast"},
        "skipped": None,
        "train_loss": 0.25,
        "num_tampered": 1,
        "attack": {"lambda": 0.5},
        "epsilon_max": 1.5,
    }
    assert {k: v for k, v in row.items() if k != "seconds"} == expected
    assert read_jsonl(tmp_path / "metrics.jsonl") == [initial, row]
    lines = stream.getvalue().splitlines()
    assert lines[0] == "round   0/10  acc 0.1000  loss 2.3000"
    assert lines[1].startswith("round   1/10  acc 0.5000  loss 1.2000  replies 3/4  ")
    assert "failed 1  rejected 1 refused 1" in lines[1] and lines[1].endswith("eps 1.50")
    # Each client failure once, as one warning line on its own stream.
    assert warnings.getvalue() == "warning: round 1: client 0 failed: boom: the client raised\n"


def test_finish_writes_the_summary_from_the_recorded_rounds(tmp_path: Path) -> None:
    log = RunLog(
        tmp_path, SCENARIO, frozenset({5, 9}), stream=io.StringIO(), warnings=io.StringIO()
    )
    log.record(0, {"accuracy": 0.1, "loss": 2.3}, None, {})
    log.record(1, {"accuracy": 0.7, "loss": 1.0}, RESULT, {})
    log.record(2, {"accuracy": 0.6, "loss": 1.1}, RESULT, {})
    summary = log.finish({"partition_hash": "abc"})
    assert summary == json.loads((tmp_path / "summary.json").read_text())
    assert (summary["final_accuracy"], summary["best_accuracy"], summary["best_round"]) == (
        0.6, 0.7, 1
    )  # fmt: skip
    assert summary["malicious_clients"] == [5, 9] and summary["partition_hash"] == "abc"
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

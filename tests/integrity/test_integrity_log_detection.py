"""integrity.jsonl summaries and detection scores (golden values)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.integrity.detection import detection_scores
from server.integrity.gate import Verdict
from server.integrity.integrity_log import IntegrityLog, round_summary

VERDICTS = [
    Verdict(0, "accepted", ()),
    Verdict(3, "rejected", ("bad_signature",)),
    Verdict(1, "flagged", ("cosine_outlier",)),
    Verdict(2, "quarantined", ("stale_round", "stale_base")),
    Verdict(5, "rejected", ("quarantined",)),
    Verdict(4, "rejected", ("bad_signature",)),
]


def test_round_summary_golden() -> None:
    assert round_summary(7, VERDICTS) == {
        "round": 7,
        "accepted": 1,
        "flagged": 1,
        "rejected": 3,
        "quarantined": 1,
        "reasons": {
            "bad_signature": 2,
            "cosine_outlier": 1,
            "quarantined": 1,
            "stale_base": 1,
            "stale_round": 1,
        },  # fmt: skip
        "flagged_partitions": [1],
        "rejected_partitions": [3, 4, 5],
        "quarantined_partitions": [2],
    }


def test_log_appends_one_line_per_round(tmp_path: Path) -> None:
    log = IntegrityLog(tmp_path)
    log.write_round(1, VERDICTS[:2])
    log.write_round(2, [])
    lines = log.path.read_text().splitlines()
    assert [json.loads(line)["round"] for line in lines] == [1, 2]
    assert json.loads(lines[1])["accepted"] == 0


def test_detection_scores_golden() -> None:
    # Events: (1,3) TP, (1,4) FP, (2,3) TP, (3,5) FP -> precision 2/4.
    # Malicious {3, 6}: only 3 is ever caught -> recall 1/2; F1 = 0.5.
    scores = detection_scores({1: [3, 4], 2: {3}, 3: [5, 5]}, {3, 6})
    assert scores == pytest.approx({
        "precision": 0.5, "recall": 0.5, "f1": 0.5, "true_positive_events": 2.0,
        "false_positive_events": 2.0, "malicious_caught": 1.0, "malicious_total": 2.0,
    })  # fmt: skip


def test_detection_scores_zero_division_is_zero() -> None:
    scores = detection_scores({}, set())
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.0, 0.0, 0.0)
    perfect = detection_scores({4: [1]}, {1})
    assert (perfect["precision"], perfect["recall"], perfect["f1"]) == (1.0, 1.0, 1.0)

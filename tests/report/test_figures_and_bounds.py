"""Breakdown points from the rules' declared bounds; privacy and integrity columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from common.results import append_jsonl, atomic_write_json, read_json
from common.schema import Scenario
from fedshield.report import build_report
from fedshield.report.breakdown import breakdown_point
from strategies import get_aggregator
from tests.report._synthetic_runs import scenario, write_run


def _defense(aggregator: str, params: dict[str, object] | None = None, **extra: object) -> Scenario:
    base = scenario("fedavg", "alie", 0.1, 1)
    defense = {"aggregator": aggregator, "params": params or {}, **extra}
    return Scenario.model_validate({**base.model_dump(), "defense": defense})


@pytest.mark.parametrize(
    ("aggregator", "params", "point"),
    [
        ("krum", {}, 0.3),  # n = 10 >= 2f+3: f <= 3
        ("bulyan", {}, 0.1),  # n >= 4f+3: f <= 1
        ("multi_krum", {"num_selected": 8}, 0.2),  # n >= max(2f+3, m+f): f <= 2
        ("median", {}, 0.5),
        ("geometric_median", {}, 0.5),
        ("trimmed_mean", {"num_trimmed": 2}, 0.2),  # beta = b/n
        ("fedavg", {}, 0.0),
        ("dnc", {}, 0.5),  # its bound n > c*f alone would allow 0.9: capped at one half
        ("signguard", {}, None),
        ("norm_bounding", {}, None),
    ],
)
def test_breakdown_point_of_each_rule(
    aggregator: str, params: dict[str, object], point: float | None
) -> None:
    assert breakdown_point(_defense(aggregator, params)) == point


def test_krum_breakdown_is_the_largest_f_its_own_bound_admits() -> None:
    # Played against the rule itself: f* admitted by Krum's min_clients, f* + 1 refused.
    for n in range(3, 30):
        s = _defense("krum").model_copy(update={"clients_per_round": n})
        s = s.model_copy(update={"data": s.data.model_copy(update={"num_clients": n})})
        f = round(breakdown_point(s) * n)  # type: ignore[operator]
        assert get_aggregator("krum", num_byzantine=f).min_clients() <= n
        if f / n < 0.5:
            assert get_aggregator("krum", num_byzantine=f + 1).min_clients() > n


def test_bucketing_divides_the_tolerated_share_by_the_bucket_size() -> None:
    # Karimireddy et al.: one Byzantine client spoils a bucket of s.
    bucketed = _defense("median", pre=[{"name": "bucketing", "params": {"bucket_size": 2}}])
    assert breakdown_point(bucketed) == 0.25
    # Krum behind buckets of 2: ceil(n/2) >= 2f+3 buckets, so f <= 1 of n = 10.
    krum = _defense("krum", pre=[{"name": "bucketing", "params": {"bucket_size": 2}}])
    assert breakdown_point(krum) == 0.1


def _private_run(directory: Path, precision: float, recall: float, epsilon: float) -> None:
    run = write_run(directory, "median", "alie", 0.1, 1)
    s = scenario("median", "alie", 0.1, 1, dp={"enabled": True}, integrity={"enabled": True})
    atomic_write_json(run / "scenario.json", s.model_dump(mode="json"))
    rows = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").unlink()
    for number, line in enumerate(rows):
        append_jsonl(run / "metrics.jsonl", {**json.loads(line), "epsilon_max": epsilon * number})
    summary = read_json(run / "summary.json")
    detection = {"precision": precision, "recall": recall}
    atomic_write_json(run / "summary.json", {**summary, "integrity": {"detection": detection}})


def test_epsilon_and_detection_columns_come_with_dp_and_integrity(tmp_path: Path) -> None:
    _private_run(tmp_path / "a", precision=0.75, recall=1.0, epsilon=0.5)
    write_run(tmp_path / "b", "krum", "alie", 0.1, 1)  # neither on: empty cells
    report = build_report(tmp_path).read_text()
    with (tmp_path / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["run"] for r in rows] == ["a", "b"]
    assert float(rows[0]["epsilon"]) == 1.5  # after round 3: 0.5 * 3
    assert (float(rows[0]["detection_precision"]), float(rows[0]["detection_recall"])) == (
        0.75,
        1.0,
    )
    assert rows[1]["epsilon"] == rows[1]["detection_precision"] == ""
    assert "| epsilon | detect. precision | detect. recall |" in report
    # dp.enabled and integrity.enabled differ between the two runs: swept fields, so columns.
    row = "| median | alie | 0.1 | true | true | 1 | 0.7600 | 0.7600 | 0.6000 | 1.500 | 0.750 |"
    assert row in report


def test_robust_accuracy_columns_come_from_the_summary(tmp_path: Path) -> None:
    run = write_run(tmp_path / "a", "median", "alie", 0.1, 1)
    summary = read_json(run / "summary.json")
    robust = {"final_robust_accuracy_fgsm": 0.61, "final_robust_accuracy_pgd": 0.59}
    atomic_write_json(run / "summary.json", {**summary, **robust})
    write_run(tmp_path / "b", "krum", "alie", 0.1, 1)  # no [robustness]: empty cells
    build_report(tmp_path)
    with (tmp_path / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert (float(rows[0]["robust_accuracy_fgsm"]), float(rows[0]["robust_accuracy_pgd"])) == (
        0.61,
        0.59,
    )
    assert rows[1]["robust_accuracy_fgsm"] == rows[1]["robust_accuracy_pgd"] == ""


def test_a_section_swept_whole_is_shown_on_the_axes_not_as_panels() -> None:
    from fedshield.report.tables import panel_fields

    # backdoors_vs_defenses sweeps the attack section whole and the rule by field.
    fields = ["seed", "attack", "defense.aggregator", "defense.params", "rounds"]
    assert panel_fields(fields) == ["rounds"]
    assert panel_fields(["defense", "train.learning_rate"]) == ["train.learning_rate"]

"""Detection quality of the gate, scored against ground truth in the metrics layer only.

The truth (which partitions are malicious) comes from the scenario; it is never passed to the
gate, so it cannot leak into a defense decision.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Set


def _ratio(numerator: int, denominator: int) -> float:
    # sklearn's zero_division=0 convention: an undefined ratio scores 0, never NaN in JSON.
    return numerator / denominator if denominator else 0.0


def detection_scores(
    flagged_by_round: Mapping[int, Collection[int]], malicious: Set[int]
) -> dict[str, float]:
    """Precision, recall and F1 of the gate's flags (any non-accepted verdict).

    * ``precision = TP / (TP + FP)`` over flag *events* ``(round, partition)``: the share of
      flags that hit a malicious partition;
    * ``recall = |malicious partitions flagged at least once| / |malicious|``;
    * ``f1 = 2 P R / (P + R)``.

    Undefined ratios are 0.0 (no flags, or no malicious partition). Counts are returned as
    floats too, so the dict is one homogeneous metrics record.
    """
    events = [(r, p) for r, partitions in flagged_by_round.items() for p in set(partitions)]
    true_positives = sum(1 for _, partition in events if partition in malicious)
    false_positives = len(events) - true_positives
    caught = {partition for _, partition in events} & set(malicious)
    precision = _ratio(true_positives, len(events))
    recall = _ratio(len(caught), len(malicious))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "true_positive_events": float(true_positives),
        "false_positive_events": float(false_positives),
        "malicious_caught": float(len(caught)),
        "malicious_total": float(len(malicious)),
    }

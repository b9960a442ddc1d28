"""``integrity.jsonl``: one summary line per round of what the gate decided.

Each line (keys sorted)::

    {"round": r, "accepted": n, "flagged": n, "rejected": n, "quarantined": n,
     "reasons": {"bad_signature": n, ...},            # over flagged + rejected + quarantined
     "flagged_partitions": [...], "rejected_partitions": [...],
     "quarantined_partitions": [...]}

The partition lists let the metrics layer score detection against the scenario's ground truth
(:func:`server.integrity.detection.detection_scores`); the gate never sees that truth.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.results import append_line
from server.integrity.gate import Verdict

INTEGRITY_LOG_FILE = "integrity.jsonl"


def round_summary(server_round: int, verdicts: Sequence[Verdict]) -> dict[str, Any]:
    """The line written for one round (see the module docstring)."""
    decisions = Counter(verdict.decision for verdict in verdicts)
    reasons = Counter(reason for verdict in verdicts for reason in verdict.reasons)

    def partitions(decision: str) -> list[int]:
        return sorted(v.partition_id for v in verdicts if v.decision == decision)

    return {
        "round": server_round,
        "accepted": decisions["accepted"],
        "flagged": decisions["flagged"],
        "rejected": decisions["rejected"],
        "quarantined": decisions["quarantined"],
        "reasons": dict(sorted(reasons.items())),
        "flagged_partitions": partitions("flagged"),
        "rejected_partitions": partitions("rejected"),
        "quarantined_partitions": partitions("quarantined"),
    }


class IntegrityLog:
    """Appends :func:`round_summary` lines to ``run_dir/integrity.jsonl`` (crash-safe)."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / INTEGRITY_LOG_FILE

    def write_round(self, server_round: int, verdicts: Sequence[Verdict]) -> None:
        """Append the summary of ``server_round``."""
        line = json.dumps(round_summary(server_round, verdicts), sort_keys=True)
        append_line(self.path, line)

"""Synthetic run directories, written the way a real run writes them (no Ray, no training).

Every figure is a closed-form function of the coordinates, so a test can say what the report
must show: final accuracy ``BASE[defense] - DROP[attack] * malicious + 0.01 * seed``, attack
success rate rising to ``SUCCESS[defense]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.results import append_jsonl, atomic_write_json
from common.schema import Scenario

BASE = {"fedavg": 0.9, "krum": 0.8, "median": 0.85}
DROP = {"alie": 1.0, "sign_flip": 0.5}
SUCCESS = {"fedavg": 0.9, "krum": 0.3, "median": 0.6}
PARAMS: dict[str, dict[str, Any]] = {"krum": {"num_byzantine": 2}}
ROUNDS = 3
STEP_SECONDS = {"attack": 0.001, "integrity": 0.0, "evaluate": 0.02}
AGGREGATE_SECONDS = {"fedavg": 0.001, "krum": 0.004, "median": 0.002}
VERSIONS = {"flwr": "1.23.0", "numpy": "1.26.4", "tensorflow": "2.15.1"}


def final_accuracy(defense: str, attack: str, malicious: float, seed: int) -> float:
    return BASE[defense] - DROP[attack] * malicious + 0.01 * seed


def scenario(defense: str, attack: str, malicious: float, seed: int, **extra: Any) -> Scenario:
    return Scenario.model_validate(
        {
            "name": f"{defense}-{attack}",
            "seed": seed,
            "rounds": ROUNDS,
            "data": {"num_clients": 10},
            "defense": {"aggregator": defense, "params": PARAMS.get(defense, {})},
            "attack": {"type": attack, "malicious": malicious},
            **extra,
        }
    )


def rows(defense: str, attack: str, malicious: float, seed: int) -> list[dict[str, Any]]:
    """Round 0 at 0.1, then a straight rise to the final accuracy, with a full time split."""
    final = final_accuracy(defense, attack, malicious, seed)
    out: list[dict[str, Any]] = [{"round": 0, "accuracy": 0.1, "loss": 2.3, "seconds": 0.0}]
    for r in range(1, ROUNDS + 1):
        split = {"train_max": 0.5 + 0.1 * r, "train_mean": 0.4, **STEP_SECONDS}
        out.append(
            {
                "round": r,
                "accuracy": 0.1 + (final - 0.1) * r / ROUNDS,
                "loss": 1.0 / r,
                "attack_success_rate": SUCCESS[defense] * r / ROUNDS,
                "seconds": 1.0 + r,
                "time": {**split, "aggregate": AGGREGATE_SECONDS[defense]},
            }
        )
    return out


def write_run(run_dir: Path, defense: str, attack: str, malicious: float, seed: int) -> Path:
    """A finished run: scenario.json, metrics.jsonl and summary.json as ``RunLog`` writes them."""
    s = scenario(defense, attack, malicious, seed)
    atomic_write_json(run_dir / "scenario.json", s.model_dump(mode="json"))
    metrics = rows(defense, attack, malicious, seed)
    for row in metrics:
        append_jsonl(run_dir / "metrics.jsonl", row)
    summary = {
        "status": "finished",
        "last_round": ROUNDS,
        "final_accuracy": metrics[-1]["accuracy"],
        "wall_seconds": 12.5 + seed,
        "package_versions": VERSIONS,
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return run_dir


GRID = [
    (d, a, m, s)
    for m in (0.1, 0.3)
    for d in ("fedavg", "krum", "median")
    for a in ("alie", "sign_flip")
    for s in (1, 2)
]
FIELDS = ["attack.malicious", "defense.aggregator", "attack.type", "seed"]


def write_sweep(directory: Path) -> Path:
    """A sweep directory of the 24 cells of :data:`GRID`, with its ``sweep.json``."""
    cells = []
    for index, (d, a, m, s) in enumerate(GRID):
        cell_dir = f"cells/{index:03d}"
        write_run(directory / cell_dir, d, a, m, s)
        coordinates = {FIELDS[0]: m, FIELDS[1]: d, FIELDS[2]: a, FIELDS[3]: s}
        cells.append(
            {
                "id": f"{index:03d}",
                "dir": cell_dir,
                "coordinates": coordinates,
                "status": "finished",
                "group": 0,
            }
        )
    sweep = {
        "command": "fedshield sweep grid.toml",
        "grid": "grid.toml",
        "fields": FIELDS,
        "cells": cells,
    }
    atomic_write_json(directory / "sweep.json", sweep)
    return directory

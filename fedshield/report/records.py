"""One result record per run: its coordinates and the figures ``results.csv`` holds.

Figures, each read from what the run stored (nothing is recomputed from weights):

* ``final_accuracy``: clean test accuracy after the last round; ``best_accuracy`` the highest
  after any trained round (round 0, the initial model, only when nothing was trained);
* ``attack_success_rate``: after the last round, when the attack defines a success set;
* ``robust_accuracy_fgsm`` / ``robust_accuracy_pgd``: the last round's robust accuracy, when
  ``[robustness]`` attacks the global model (``server/robustness.py``);
* ``epsilon``: the headline epsilon after the last round (``epsilon_max``), when DP is on;
* ``detection_precision`` / ``detection_recall``: the integrity gate's, when integrity is on
  (``server/integrity/detection.py``);
* ``wall_seconds``: the run's wall time; ``mean_round_seconds``: the mean over trained rounds;
* ``time_<step>``: the mean over trained rounds of each step of the time split
  (``server/timing.py``).

The three axes of a defense benchmark are labels derived from the scenario whatever was swept:
``defense`` is the aggregation chain (pre-aggregators, then the rule, each with its parameters),
``attack`` the attack type(s) with their parameters, ``malicious`` the malicious fraction of
the federation (a count is divided by ``data.num_clients``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from common.schema import Scenario
from fedshield.report.collect import Run

TIME_STEPS = ("train_max", "train_mean", "attack", "integrity", "aggregate", "evaluate")
"""The time split's steps in the order tables show them (``server/timing.py``)."""

AXES = ("defense", "attack", "malicious", "seed")
FIGURES = (
    "final_accuracy",
    "best_accuracy",
    "attack_success_rate",
    "robust_accuracy_fgsm",
    "robust_accuracy_pgd",
    "epsilon",
    "detection_precision",
    "detection_recall",
    "wall_seconds",
    "mean_round_seconds",
    *(f"time_{step}" for step in TIME_STEPS),
)


def _with_params(name: str, params: Mapping[str, Any]) -> str:
    if not params:
        return name
    inner = ", ".join(f"{k}={json.dumps(params[k], sort_keys=True)}" for k in sorted(params))
    return f"{name}({inner})"


def defense_label(scenario: Scenario) -> str:
    """``"nnm(num_byzantine=2)+krum(num_byzantine=2)"``: the chain in the order it runs."""
    defense = scenario.defense
    stages = [_with_params(step.name, step.params) for step in defense.pre]
    return "+".join([*stages, _with_params(defense.aggregator, defense.params)])


def attack_label(scenario: Scenario) -> str:
    """``"alie"``, ``"backdoor+scaling(gamma=10)"`` (parameters per attack), or ``"none"``."""
    attack = scenario.attack
    if not attack.enabled:
        return "none"
    return "+".join(_with_params(name, params) for name, params, _ in attack.stages())


def malicious_fraction(scenario: Scenario) -> float:
    """The configured malicious share of the federation (0 without an attack)."""
    malicious = scenario.attack.malicious if scenario.attack.enabled else 0
    if isinstance(malicious, int):
        return malicious / scenario.data.num_clients
    return float(malicious)


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _mean(values: Sequence[object]) -> float | None:
    finite = [v for v in (_finite(x) for x in values) if v is not None]
    return sum(finite) / len(finite) if finite else None


def _figures(run: Run) -> dict[str, float | None]:
    rows, summary, scenario = run.rows, run.summary, run.scenario
    trained = [r for r in rows if r["round"] > 0] or list(rows)
    last = rows[-1]
    detection = summary.get("integrity", {})
    detection = detection.get("detection", {}) if isinstance(detection, dict) else {}
    figures = {
        "final_accuracy": _finite(last["accuracy"]),
        "best_accuracy": max(float(r["accuracy"]) for r in trained),
        "attack_success_rate": _finite(last.get("attack_success_rate")),
        "robust_accuracy_fgsm": _finite(summary.get("final_robust_accuracy_fgsm")),
        "robust_accuracy_pgd": _finite(summary.get("final_robust_accuracy_pgd")),
        "epsilon": _finite(last.get("epsilon_max")) if scenario.dp.enabled else None,
        "detection_precision": _finite(detection.get("precision"))
        if scenario.integrity.enabled
        else None,
        "detection_recall": _finite(detection.get("recall"))
        if scenario.integrity.enabled
        else None,
        "wall_seconds": _finite(summary.get("wall_seconds")),
        "mean_round_seconds": _mean([r.get("seconds") for r in trained]),
    }
    for step in TIME_STEPS:
        split = [r.get("time") for r in trained]
        figures[f"time_{step}"] = _mean(
            [t.get(step) if isinstance(t, dict) else None for t in split]
        )
    return figures


def run_record(run: Run) -> dict[str, Any]:
    """``run``, the swept fields (dotted), the axes and the figures, in that order."""
    return {
        "run": run.id,
        **{field: run.coordinates.get(field) for field in sorted(run.coordinates)},
        "defense": defense_label(run.scenario),
        "attack": attack_label(run.scenario),
        "malicious": malicious_fraction(run.scenario),
        "seed": run.scenario.seed,
        "rounds": run.rows[-1]["round"],
        **_figures(run),
    }


def columns(records: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> list[str]:
    """The CSV header: run, swept fields, axes, then every figure some run has."""
    present = [f for f in FIGURES if any(r.get(f) is not None for r in records)]
    swept = [f for f in fields if f not in AXES]
    return ["run", *swept, *AXES, "rounds", *present]

"""Measured membership leakage with and without DP-SGD, over several seeds.

Runs the shipped ``dp_leakage`` scenario (a setting that memorises: 2 clients with about 90
digits each, many local epochs, no weight decay) once per seed in ``SEEDS`` with DP off and
once per noise multiplier in ``DP_SIGMAS`` with DP-SGD on, one simulation at a time. Each run's
summary holds the loss-threshold membership-inference attack on the final global model (Yeom et
al. 2018; members: the training data of clients that took part, non-members: the test set,
balanced):

    AUC of the ROC of the score -loss(x, y),   Adv = max_tau (TPR(tau) - FPR(tau)).

With (epsilon, 0)-DP, Adv <= e^epsilon - 1 (Yeom et al., Theorem 1); the attack is one attack, so
its figures are lower bounds on leakage. Writes per-run rows and mean / sample standard deviation
per arm to ``benchmarks/results/leakage.txt`` (atomically).

Run:  TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/leakage.py
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.privacy_utility import RunFigures, format_table, run_figures  # noqa: E402
from common.results import atomic_write_text  # noqa: E402
from scenarios.loader import load_scenario  # noqa: E402

SCENARIO = "dp_leakage"
SEEDS = tuple(range(1, 11))
DP_SIGMAS = (1.0, 2.0)
TABLE = ROOT / "benchmarks" / "results" / "leakage.txt"


def _mean_sd(values: Sequence[float]) -> str:
    return f"{statistics.mean(values):.4f} +- {statistics.stdev(values):.4f}"


def arm_summary(label: str, rows: Sequence[RunFigures]) -> str:
    """One line: mean +- sample standard deviation of accuracy, AUC, advantage over the seeds."""
    return (
        f"{label:<14} n={len(rows)}  accuracy {_mean_sd([r.accuracy for r in rows])}  "
        f"MI AUC {_mean_sd([r.mi_auc for r in rows])}  "
        f"MI adv {_mean_sd([r.mi_advantage for r in rows])}  "
        f"eps poisson_rdp {max(r.epsilon_poisson_rdp for r in rows):.2f}"
    )


def main() -> None:
    scenario = load_scenario(SCENARIO)
    sigmas: tuple[float | None, ...] = (None, *DP_SIGMAS)
    arms: dict[str, list[RunFigures]] = {
        "no DP" if s is None else f"DP sigma={s:g}": [] for s in sigmas
    }
    for seed in SEEDS:
        for label, arm_sigma in zip(arms, sigmas, strict=True):
            arms[label].append(run_figures(SCENARIO, [f"seed={seed}"], sigma=arm_sigma))
            print(arm_summary(label, arms[label]) if len(arms[label]) > 1 else label, flush=True)
    data, train, dp = scenario.data, scenario.train, scenario.dp
    header = (
        f"membership leakage: scenario {SCENARIO} (digits, {data.num_clients} clients, test "
        f"fraction {data.test_fraction}, {scenario.rounds} rounds, {train.local_epochs} local "
        f"epochs, batch {train.batch_size}, lr {train.learning_rate}, momentum {train.momentum}, "
        f"l2 {scenario.model.l2}), seeds {', '.join(map(str, SEEDS))}; DP arms: "
        f"C = {dp.l2_norm_clip}, sigma in {DP_SIGMAS}, Poisson sampling, delta = {dp.delta:g}"
    )
    body = [format_table([r for rows in arms.values() for r in rows], header=header)]
    body.append("mean +- sample standard deviation over seeds:")
    body.extend(arm_summary(label, rows) for label, rows in arms.items())
    atomic_write_text(TABLE, "\n".join(body) + "\n")


if __name__ == "__main__":
    main()

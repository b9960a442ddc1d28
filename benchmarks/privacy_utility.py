"""Privacy/utility trade-off of DP-SGD: final accuracy against epsilon for several sigma.

Runs the shipped ``dp_local`` scenario (digits, 10 IID clients, all sampled every round) once per
noise multiplier sigma in ``SIGMAS``, one simulation at a time, and once without DP. For each run
it reports the final global test accuracy and the largest per-client epsilon at the scenario's
delta under both accountings of :mod:`server.privacy_accounting`:

* Poisson RDP (the proven bound here, batches are Poisson-sampled): the client's rounds composed
  as SelfComposed(PoissonSampled(q, Gaussian(sigma)), steps), q = b / n (Abadi et al. 2016;
  Mironov, Talwar, Zhang 2019);
* once per epoch: SelfComposed(Gaussian(sigma), epochs), no amplification.

Writes the table to ``benchmarks/results/privacy_utility.txt`` and accuracy against the Poisson
RDP epsilon (log scale, the no-DP accuracy as a dashed line) to
``docs/figures/privacy_utility.png``, both atomically. One seed per sigma: the table shows the
trend, not a confidence interval (``benchmarks/leakage.py`` repeats seeds).

Run:  TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/privacy_utility.py
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.results import atomic_write, atomic_write_text  # noqa: E402
from fedshield.runner import run_scenario  # noqa: E402
from scenarios.loader import load_scenario  # noqa: E402

SCENARIO = "dp_local"
SIGMAS = (0.6, 0.8, 1.0, 1.5, 2.5)
TABLE = ROOT / "benchmarks" / "results" / "privacy_utility.txt"
FIGURE = ROOT / "docs" / "figures" / "privacy_utility.png"


@dataclass(frozen=True)
class RunFigures:
    """What one finished run reports about utility, privacy and measured leakage."""

    seed: int
    sigma: float | None  # None: DP off
    accuracy: float
    epsilon_poisson_rdp: float
    epsilon_shuffle: float
    mi_auc: float
    mi_advantage: float
    seconds: float


def run_figures(scenario: str, overrides: Sequence[str], *, sigma: float | None) -> RunFigures:
    """Run ``scenario`` with ``overrides`` in a throw-away output folder; collect its figures.

    ``sigma=None`` switches DP off (epsilon is then infinite: nothing bounds the leakage).
    Epsilons are the maximum over honest clients of the final per-client values.
    """
    dp = (
        ["dp.enabled=false"]
        if sigma is None
        else ["dp.enabled=true", f"dp.noise_multiplier={sigma}"]
    )
    with tempfile.TemporaryDirectory() as output:
        loaded = load_scenario(scenario, [*overrides, *dp, f'output="{output}"'])
        summary: dict[str, Any] = run_scenario(loaded).summary
    clients = summary["privacy"]["clients"] if sigma is not None else []
    inference = summary["membership_inference"]
    return RunFigures(
        seed=int(summary["seed"]),
        sigma=sigma,
        accuracy=float(summary["final_accuracy"]),
        epsilon_poisson_rdp=max((c["epsilon_poisson_rdp"] for c in clients), default=float("inf")),
        epsilon_shuffle=max((c["epsilon_shuffle"] for c in clients), default=float("inf")),
        mi_auc=float(inference["auc"]),
        mi_advantage=float(inference["advantage"]),
        seconds=float(summary["wall_seconds"]),
    )


def format_table(rows: Sequence[RunFigures], *, header: str) -> str:
    """Fixed-width text table, one line per run (sigma "off" = DP disabled)."""
    lines = [
        header,
        "",
        f"{'seed':>4} {'sigma':>6} {'accuracy':>8} {'eps poisson_rdp':>15} {'eps shuffle':>11} "
        f"{'MI AUC':>7} {'MI adv':>7} {'seconds':>8}",
    ]
    for r in rows:
        sigma = "off" if r.sigma is None else f"{r.sigma:g}"
        lines.append(
            f"{r.seed:>4} {sigma:>6} {r.accuracy:>8.4f} {r.epsilon_poisson_rdp:>15.2f} "
            f"{r.epsilon_shuffle:>11.2f} {r.mi_auc:>7.4f} {r.mi_advantage:>7.4f} {r.seconds:>8.1f}"
        )
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[RunFigures], path: Path, *, title: str) -> None:
    """Accuracy against Poisson RDP epsilon (log x), no-DP accuracy dashed; written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    private = sorted((r for r in rows if r.sigma is not None), key=lambda r: r.epsilon_poisson_rdp)
    axes.plot([r.epsilon_poisson_rdp for r in private], [r.accuracy for r in private], marker="o")
    for r in private:
        axes.annotate(
            f"sigma={r.sigma:g}",
            (r.epsilon_poisson_rdp, r.accuracy),
            textcoords="offset points",
            xytext=(4, -12),
            fontsize=8,
        )
    for r in rows:
        if r.sigma is None:
            axes.axhline(
                r.accuracy, linestyle="--", color="grey", label=f"no DP ({r.accuracy:.3f})"
            )
    axes.set(
        xscale="log",
        xlabel="epsilon (Poisson RDP, max over clients)",
        ylabel="final test accuracy",
        ylim=(0.0, 1.0),
        title=title,
    )
    axes.grid(alpha=0.3, which="both")
    axes.legend(loc="lower right")
    atomic_write(path, lambda handle: figure.savefig(handle, format="png"))
    path.chmod(0o644)  # mkstemp made it owner-only; this figure is a committed doc file


def main() -> None:
    scenario = load_scenario(SCENARIO)
    rows = [run_figures(SCENARIO, [], sigma=None)]
    for sigma in SIGMAS:
        rows.append(run_figures(SCENARIO, [], sigma=sigma))
        print(format_table(rows, header=""), flush=True)  # progress: partial table after each run
    train, dp = scenario.train, scenario.dp
    header = (
        f"privacy/utility of DP-SGD: scenario {SCENARIO} (digits, {scenario.data.num_clients} IID "
        f"clients, {scenario.rounds} rounds, {train.local_epochs} local epochs, batch "
        f"{train.batch_size}, lr {train.learning_rate}, momentum {train.momentum}, "
        f"C = {dp.l2_norm_clip}, Poisson sampling), seed {scenario.seed}, delta = {dp.delta:g}; "
        "epsilon = max over clients; MI = loss-threshold membership inference on the final "
        "model (members: training data, non-members: test set)"
    )
    atomic_write_text(TABLE, format_table(rows, header=header))
    plot(rows, FIGURE, title=f"{SCENARIO}: accuracy vs epsilon (delta={scenario.dp.delta:g})")


if __name__ == "__main__":
    main()

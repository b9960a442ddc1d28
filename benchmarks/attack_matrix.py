"""Attack x defense matrix on the shipped ``attack_*`` scenarios, run through the real runner.

Every cell is one full simulation (Flower + Ray, one run at a time, in this process): the
attack's scenario file with ``defense.aggregator`` and ``defense.params`` replaced by the
defense's, exactly as ``fedshield run scenarios/attack_X.toml --set defense.aggregator=...``
would run it. The ``none`` row is the same federation with the attack removed (the clean
accuracy each defense pays for its robustness). Each defense is told the true number of
malicious clients ``f`` (Krum's and trimmed mean's parameter), the most favourable setting for
the defender.

    python benchmarks/attack_matrix.py                      # main matrix, seed 42
    python benchmarks/attack_matrix.py --seeds 1 2 3 --rounds 8
    python benchmarks/attack_matrix.py --attacks alie ipm --defenses median krum

Columns: final and best clean test accuracy over the rounds, and for attacks that define a
success set (backdoor, targeted label flip) the final and highest attack success rate. The
table is rewritten atomically after every cell, so an interrupted matrix keeps its finished
cells.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.attack_schedule import malicious_count  # noqa: E402
from common.results import atomic_write_text, read_jsonl  # noqa: E402
from common.schema import Scenario  # noqa: E402
from fedshield.runner import run_scenario  # noqa: E402
from scenarios.loader import load_scenario  # noqa: E402

CLEAN = "none"
# Attack name -> shipped scenario. The clean row is --clean-base with its attack removed; every
# attack_* file shares one federation, so that row is the baseline of every attack.
ATTACK_SCENARIOS: dict[str, str] = {
    "sign_flip": "attack_sign_flip",
    "gaussian": "attack_gaussian",
    "alie": "attack_alie",
    "ipm": "attack_ipm",
    "backdoor": "attack_backdoor",
    "label_flip": "attack_label_flip",
}
# Defense name -> its parameters as a function of the true malicious count f (Multi-Krum keeps
# m = 5 updates, as in scenarios/defense_multi_krum.toml).
DEFENSES: dict[str, Callable[[int], dict[str, int]]] = {
    "fedavg": lambda f: {},
    "median": lambda f: {},
    "trimmed_mean": lambda f: {"num_trimmed": f},
    "krum": lambda f: {"num_byzantine": f},
    "multi_krum": lambda f: {"num_byzantine": f, "num_selected": 5},
    "geometric_median": lambda f: {},
}
MAIN_ATTACKS = (CLEAN, "sign_flip", "gaussian", "alie", "ipm", "backdoor")
MAIN_DEFENSES = ("fedavg", "median", "trimmed_mean", "krum")


@dataclass(frozen=True)
class Cell:
    """The outcome of one simulation."""

    attack: str
    defense: str
    seed: int
    final_accuracy: float
    best_accuracy: float
    final_asr: float | None
    max_asr: float | None
    seconds: float


def _inline_table(params: dict[str, int]) -> str:
    return "{" + ", ".join(f"{k} = {v}" for k, v in params.items()) + "}"


def cell_scenario(
    attack: str, defense: str, *, seed: int, rounds: int | None, clean_base: str
) -> Scenario:
    """The validated scenario of one cell (``--set`` overrides on the shipped file)."""
    source = ROOT / "scenarios" / f"{ATTACK_SCENARIOS.get(attack, clean_base)}.toml"
    base = load_scenario(source, [f"seed={seed}"])
    f = malicious_count(base.data.num_clients, base.attack.malicious)
    overrides = [
        f"seed={seed}",
        f"name=matrix-{attack}-{defense}",
        f"defense.aggregator={defense}",
        f"defense.params={_inline_table(DEFENSES[defense](f))}",
        "defense.pre=[]",
    ]
    if attack == CLEAN:
        overrides += ["attack.type=none", "attack.params={}", "attack.malicious=0"]
    if rounds is not None:
        overrides.append(f"rounds={rounds}")
    return load_scenario(source, overrides)


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def run_cell(scenario: Scenario, attack: str, defense: str) -> Cell:
    """Run one cell and read its metrics (a NaN success rate, from a non-finite model, is left
    out of the maximum)."""
    started = time.perf_counter()
    result = run_scenario(scenario)
    rows = [r for r in read_jsonl(result.run_dir / "metrics.jsonl") if r["round"] > 0]
    asr = _finite([r["attack_success_rate"] for r in rows if "attack_success_rate" in r])
    has_asr = "attack_success_rate" in rows[-1]
    return Cell(
        attack=attack,
        defense=defense,
        seed=scenario.seed,
        final_accuracy=float(result.summary["final_accuracy"]),
        best_accuracy=float(result.summary["best_accuracy"]),
        final_asr=float(rows[-1]["attack_success_rate"]) if has_asr else None,
        max_asr=max(asr) if has_asr and asr else None,
        seconds=time.perf_counter() - started,
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render(
    cells: Sequence[Cell], header: str, attacks: Sequence[str], defenses: Sequence[str]
) -> str:
    """The results file: one line per cell, then final accuracy (and ASR) pivots, seed means."""
    lines = [header, ""]
    lines.append(
        f"{'attack':<11} {'defense':<17} {'seed':>5} {'final_acc':>9} {'best_acc':>9} "
        f"{'final_asr':>9} {'max_asr':>9} {'seconds':>8}"
    )
    for c in cells:
        lines.append(
            f"{c.attack:<11} {c.defense:<17} {c.seed:>5} {_fmt(c.final_accuracy):>9} "
            f"{_fmt(c.best_accuracy):>9} {_fmt(c.final_asr):>9} {_fmt(c.max_asr):>9} "
            f"{c.seconds:>8.1f}"
        )

    def pivot(title: str, value: Callable[[Cell], float | None]) -> None:
        lines.extend(["", title, f"{'attack':<11}" + "".join(f" {d:>17}" for d in defenses)])
        for attack in attacks:
            row = f"{attack:<11}"
            for defense in defenses:
                got = [
                    v
                    for c in cells
                    if c.attack == attack and c.defense == defense
                    if (v := value(c)) is not None
                ]
                row += f" {(_fmt(statistics.fmean(got)) if got else '-'):>17}"
            lines.append(row)

    pivot("final clean accuracy (mean over seeds)", lambda c: c.final_accuracy)
    if any(c.final_asr is not None for c in cells):
        pivot("final attack success rate (mean over seeds)", lambda c: c.final_asr)
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--attacks", nargs="+", default=list(MAIN_ATTACKS), choices=[CLEAN, *ATTACK_SCENARIOS]
    )
    parser.add_argument(
        "--defenses", nargs="+", default=list(MAIN_DEFENSES), choices=list(DEFENSES)
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--rounds", type=int, default=None, help="override every scenario's rounds")
    parser.add_argument(
        "--clean-base",
        default="attack_sign_flip",
        help="scenario whose federation the clean row uses (attack removed)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "attack_matrix.txt"
    )
    args = parser.parse_args(argv)
    command = " ".join(sys.argv[1:] if argv is None else argv) or "(defaults)"

    # Validate every cell before the first simulation starts: a typo fails in seconds.
    plan: list[tuple[str, str, Scenario]] = [
        (a, d, cell_scenario(a, d, seed=s, rounds=args.rounds, clean_base=args.clean_base))
        for s in args.seeds
        for a in args.attacks
        for d in args.defenses
    ]
    sources = ", ".join(f"{a}={ATTACK_SCENARIOS.get(a, args.clean_base)}" for a in args.attacks)
    header = (
        f"# benchmarks/attack_matrix.py {command}\n"
        f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs; one simulation at a time; defenses are told the true f\n"
        f"# scenarios: {sources}"
    )
    cells: list[Cell] = []
    for attack, defense, scenario in plan:
        cell = run_cell(scenario, attack, defense)
        cells.append(cell)
        print(
            f"{attack:<11} {defense:<17} seed {cell.seed}: final {cell.final_accuracy:.4f} "
            f"best {cell.best_accuracy:.4f} asr {_fmt(cell.final_asr)} ({cell.seconds:.0f}s)",
            flush=True,
        )
        atomic_write_text(args.out, render(cells, header, args.attacks, args.defenses))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measured cost of SecAgg+ per round: the shipped ``secure_aggregation`` scenario, on and off.

Each arm runs the scenario (digits, mlp, FedAvg, every client sampled, 1 local epoch) for
``ROUNDS`` rounds with ``n`` clients, one simulation at a time; the figure is the median of the
round wall times in ``metrics.jsonl`` over rounds 2..ROUNDS (round 1 pays TensorFlow's tracing
in every worker), next to the final accuracy (SecAgg+ quantizes the weights to
2 * clipping_range / quantization_range, so the two should agree to about 1e-6 in the weights).
Writes ``benchmarks/results/secure_aggregation.txt`` (atomically).

Run:  TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/secure_aggregation.py
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.results import atomic_write_text, read_jsonl  # noqa: E402
from fedshield.runner import run_scenario  # noqa: E402
from scenarios.loader import load_scenario  # noqa: E402

CLIENTS = (5, 10)
ROUNDS = 4
TABLE = ROOT / "benchmarks" / "results" / "secure_aggregation.txt"


def arm(num_clients: int, secure: bool, output: str) -> str:
    """One line: median round seconds and final accuracy of one run."""
    scenario = load_scenario(
        "secure_aggregation",
        [
            f"secure_aggregation.enabled={str(secure).lower()}",
            f"data.num_clients={num_clients}",
            f"rounds={ROUNDS}",
            f'output="{output}"',
        ],
    )
    result = run_scenario(scenario)
    rows = [r for r in read_jsonl(result.run_dir / "metrics.jsonl") if r["round"] >= 2]
    seconds = statistics.median(r["seconds"] for r in rows)
    line = (
        f"n={num_clients:<3} secagg={'on ' if secure else 'off'}  "
        f"median round {seconds:6.2f} s  final accuracy {rows[-1]['accuracy']:.4f}"
    )
    print(line, flush=True)
    return line


def main() -> None:
    output = os.environ.get("FEDSHIELD_BENCH_OUT", "/tmp/fedshield-secagg-bench")
    lines = [
        f"SecAgg+ cost per round: digits, mlp, FedAvg, all clients sampled, {ROUNDS} rounds, "
        f"median over rounds 2..{ROUNDS}; load average {os.getloadavg()[0]:.1f} at start",
        "",
    ]
    lines += [arm(n, secure, output) for n in CLIENTS for secure in (False, True)]
    lines.append(f"load average {os.getloadavg()[0]:.1f} at end")
    atomic_write_text(TABLE, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

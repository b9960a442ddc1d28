"""Measured compute cost of SecAgg+ per round, in one process (no Ray), on and off.

Each arm runs the shipped ``secure_aggregation`` scenario (digits, mlp, FedAvg, every client
sampled, 1 local epoch) for ``ROUNDS`` rounds with ``n`` clients through
:class:`tests.direct_grid.DirectGrid`: every message goes through Flower's wire format to the
real ``ClientApp`` of its node, serially, so a round's wall time is the sum of every client's
work (training, and under SecAgg+ the key agreement, Shamir shares, masking) plus the server's
(unmasking). The figure is the median round time in ``metrics.jsonl`` over rounds 2..ROUNDS
(round 1 pays TensorFlow's tracing), next to the final accuracy. In a Ray simulation or a real
deployment the clients' parts run in parallel and the transport adds four round trips per
round instead of one; this isolates the protocol's compute.
Writes ``benchmarks/results/secure_aggregation.txt`` (atomically).

Run:  TF_CPP_MIN_LOG_LEVEL=3 python benchmarks/secure_aggregation.py
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clients.app import app as plain_app  # noqa: E402
from clients.secagg import app as secagg_app  # noqa: E402
from common.results import atomic_write_text, read_jsonl  # noqa: E402
from scenarios.loader import load_scenario  # noqa: E402
from server.app import RunOutcome, serve  # noqa: E402
from server.secure_aggregation import serve_secure  # noqa: E402
from tests.direct_grid import DirectGrid  # noqa: E402

CLIENTS = (5, 10, 20)
ROUNDS = 4
TABLE = ROOT / "benchmarks" / "results" / "secure_aggregation.txt"


def arm(num_clients: int, secure: bool, output: Path) -> tuple[float, float]:
    """Median round seconds (rounds 2..ROUNDS) and final accuracy of one run."""
    scenario = load_scenario(
        "secure_aggregation",
        [
            f"secure_aggregation.enabled={str(secure).lower()}",
            f"data.num_clients={num_clients}",
            f"rounds={ROUNDS}",
        ],
    )
    run_dir = output / f"n{num_clients}-{secure}"
    run_dir.mkdir()
    grid = DirectGrid(secagg_app if secure else plain_app, num_clients)
    (serve_secure if secure else serve)(grid, scenario, run_dir, RunOutcome())
    rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["round"] >= 2]
    return statistics.median(r["seconds"] for r in rows), rows[-1]["accuracy"]


def main() -> None:
    logging.getLogger("flwr").setLevel(logging.CRITICAL)
    lines = [
        f"SecAgg+ compute per round, one process, no Ray: digits, mlp, FedAvg, all clients "
        f"sampled, median over rounds 2..{ROUNDS}; load average {os.getloadavg()[0]:.1f} at start",
        "",
    ]
    with tempfile.TemporaryDirectory() as scratch:
        for n in CLIENTS:
            plain, secure = arm(n, False, Path(scratch)), arm(n, True, Path(scratch))
            line = (
                f"n={n:<3} FedAvg {plain[0]:6.2f} s  SecAgg+ {secure[0]:6.2f} s  "
                f"ratio {secure[0] / plain[0]:5.2f}  overhead per client "
                f"{(secure[0] - plain[0]) / n * 1000:6.1f} ms  "
                f"final accuracy {plain[1]:.4f} / {secure[1]:.4f}"
            )
            print(line, flush=True)
            lines.append(line)
    lines.append(f"load average {os.getloadavg()[0]:.1f} at end")
    atomic_write_text(TABLE, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

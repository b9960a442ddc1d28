"""A whole run against its two alternatives: a plain loop and a bare Flower app (issue 13, item 1).

The quickstart workload (digits, 10 IID clients, the 64-unit MLP, 2 local epochs of batch 32,
SGD 0.1 momentum 0.9, FedAvg, 10 rounds, central evaluation each round) run three ways, each
as its own process, in turn, ``--repeats`` times (the first contender rotating):

* ``plain``: one Python process, Keras ``fit`` per client, numpy FedAvg
  (``benchmarks/sim_contenders.py plain``);
* ``flower``: bare Flower 1.23, ``NumPyClient`` + ``FedAvg`` + ``run_simulation``, 1 CPU per
  client, model cached per actor (``benchmarks/sim_contenders.py flower``);
* ``fedshield``: ``fedshield run quickstart``.

For each: start to first round (process start to the first round's evaluation line), steady
round (median gap between consecutive round lines after the first), whole run (process start
to exit), peak RSS of the process tree (the process and every descendant, Ray's included,
sampled every 0.1 s from /proc), final accuracy; the median over repeats, and each ratio
``fedshield / peer``. The machine is shared: the load average is printed with every run.

    flock /work/wt/ray.lock python benchmarks/simulation.py --out benchmarks/results/simulation.txt
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.results import atomic_write_text  # noqa: E402

CONTENDERS = {
    "plain": [sys.executable, "-m", "benchmarks.sim_contenders", "plain"],
    "flower": [sys.executable, "-m", "benchmarks.sim_contenders", "flower"],
    "fedshield": [sys.executable, "-m", "fedshield.cli", "run", "quickstart"],
}
# fedshield's progress line "round   3/10  acc 0.9 ..." and the peers' "ROUND 3 0.9".
ROUND_LINE = re.compile(r"^(?:ROUND\s+(\d+)\s+([\d.]+)|round\s+(\d+)/\d+\s+acc\s+([\d.]+))")
PAGE = os.sysconf("SC_PAGE_SIZE")
GiB = 1024.0**3


@dataclass
class Measure:
    first_round: float
    steady_round: float
    whole: float
    peak_rss: float
    accuracy: float


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (one /proc scan)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            statm = Path(f"/proc/{entry}/statm").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = int(statm.split()[1]) * PAGE
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(p, 0) for p in tree)


def measure(name: str, workdir: Path) -> Measure:
    return measure_command(CONTENDERS[name], workdir, rounds=10, name=name)


def measure_command(command: list[str], workdir: Path, *, rounds: int, name: str) -> Measure:
    """Run ``command`` (which prints ``rounds`` round lines) and measure it (module doc)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(proc.pid))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines: list[tuple[float, float]] = []
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        match = ROUND_LINE.match(line.strip())
        if match:
            number, accuracy = match.group(1) or match.group(3), match.group(2) or match.group(4)
            if int(number) > 0:
                lines.append((time.monotonic() - start, float(accuracy)))
        tail = (tail + [line])[-20:]
    proc.wait()
    whole = time.monotonic() - start
    done.set()
    sampler.join()
    if proc.returncode != 0 or len(lines) != rounds:
        raise SystemExit(f"{name} failed (exit {proc.returncode}):\n{''.join(tail)}")
    gaps = [b[0] - a[0] for a, b in zip(lines, lines[1:], strict=False)]
    return Measure(lines[0][0], statistics.median(gaps), whole, peak[0] / GiB, lines[-1][1])


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=sorted(CONTENDERS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    names = args.only or list(CONTENDERS)
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"fedshield-sim-bench-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# benchmarks/simulation.py  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
        f"{platform.python_version()}  {os.cpu_count()} CPUs",
        f"# start: {load()}",
    ]
    print("\n".join(lines), flush=True)
    results: dict[str, list[Measure]] = {n: [] for n in names}
    for repeat in range(args.repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            m = measure(name, workdir)
            results[name].append(m)
            line = (
                f"run {repeat + 1} {name:<9} first round {m.first_round:6.1f} s  steady round "
                f"{m.steady_round:5.2f} s  whole {m.whole:6.1f} s  peak RSS {m.peak_rss:5.2f} GiB"
                f"  acc {m.accuracy:.4f}  ({load()})"
            )
            lines.append(line)
            print(line, flush=True)
    lines += ["", "median over runs:", _table(results)]
    lines.append(f"# end: {load()}")
    print("\n".join(lines[-3:]), flush=True)
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")


def _table(results: dict[str, list[Measure]]) -> str:
    def med(name: str, field: str) -> float:
        return statistics.median(getattr(m, field) for m in results[name])

    fields = ("first_round", "steady_round", "whole", "peak_rss", "accuracy")
    rows = ["| contender | " + " | ".join(fields) + " |", "|---" * (len(fields) + 1) + "|"]
    for name in results:
        rows.append(f"| {name} | " + " | ".join(f"{med(name, f):.2f}" for f in fields) + " |")
    if "fedshield" in results:
        for peer in (n for n in results if n != "fedshield"):
            ratios = ", ".join(f"{f} {med('fedshield', f) / med(peer, f):.2f}x" for f in fields[:4])
            rows.append(f"fedshield / {peer}: {ratios}")
    return "\n".join(rows)


if __name__ == "__main__":
    main()

"""Scale: 10 to 10,000 virtual clients, 100 sampled per round (issue 13, item 3).

``fedshield run quickstart`` on ``synthetic_mnist`` (60,000 training examples, so 10,000 IID
clients still hold 6 each; digits' 1,437 could not feed them), the 64-unit MLP, 2 local epochs
of batch 32, FedAvg, ``--rounds`` rounds, with ``data.num_clients`` = N and ``clients_per_round``
= min(100, N), each N its own process, in turn. For each: start-up (process start to the first
round's line: imports, Ray, the handshake and round 1 with its traces), steady round (median gap
between consecutive round lines), whole run, and the peak RSS of the whole process tree (Ray's
processes included, /proc sampled every 0.1 s, ``benchmarks/simulation.py``).

First, without Ray: one sweep of the Simulation Engine's message extractor over N registered
nodes with the round's messages waiting, then an idle one, Flower's own against
``fedshield/message_dispatch.py`` (Flower's polls every node every 0.1 s, so its sweep time is a
floor under each round; fedshield's scans the stored messages once, woken by each push).

The round's work is fixed by the sampled clients (and their shard size: 60,000 / N examples
each), never by N: the server contacts only the sampled nodes (``server/handshake.py``) and
keeps no per-round state for the others.

    flock /work/wt/ray.lock python benchmarks/scaling.py --out benchmarks/results/scaling.txt
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flwr.app import ConfigRecord, Message, MessageType, RecordDict  # noqa: E402
from flwr.server.grid import InMemoryGrid  # noqa: E402
from flwr.server.superlink.fleet.vce import vce_api  # noqa: E402
from flwr.server.superlink.linkstate import LinkState, LinkStateFactory  # noqa: E402
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME  # noqa: E402

from benchmarks.simulation import load, measure_command  # noqa: E402
from common.results import atomic_write_text  # noqa: E402
from fedshield.message_dispatch import deliverable  # noqa: E402

SAMPLED = 100


def _engine(num_nodes: int, pending: int) -> tuple[LinkState, dict[int, int]]:
    """Flower's link state with ``num_nodes`` registered nodes and ``pending`` messages."""
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME)
    state = factory.state()
    run_id = state.create_run(None, None, None, {}, ConfigRecord(), None)
    nodes = vce_api._register_nodes(num_nodes=num_nodes, state_factory=factory)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run_id)
    grid.push_messages(
        [
            Message(content=RecordDict(), message_type=MessageType.QUERY, dst_node_id=node)
            for node in list(nodes)[:pending]
        ]
    )
    return state, nodes


def extractor_row(num_nodes: int) -> str:
    """One sweep of the engine's extractor with a round's messages waiting, then idle: Flower's
    (``vce_api.add_messages_to_queue``'s loop body) against fedshield's one scan
    (``fedshield.message_dispatch.deliverable``)."""
    pending = min(SAMPLED, num_nodes)
    figures = []
    for ours in (False, True):
        state, nodes = _engine(num_nodes, pending)
        queue: Queue[Message] = Queue()
        for _ in range(2):  # the sweep that delivers, then an idle one
            start = time.perf_counter()
            if ours:
                for message in deliverable(state, frozenset(nodes))[0]:
                    queue.put(message)
            else:
                for node_id in nodes:  # Flower's sweep
                    for message in state.get_message_ins(node_id=node_id, limit=1):
                        queue.put(message)
            figures.append(1000 * (time.perf_counter() - start))
        assert queue.qsize() == pending
    return f"| {num_nodes} | {pending} | " + " | ".join(f"{ms:.2f}" for ms in figures) + " |"


def command(num_clients: int, rounds: int) -> list[str]:
    """``fedshield run quickstart`` at ``num_clients`` virtual clients (module docstring)."""
    overrides = {
        "data.dataset": "synthetic_mnist",
        "data.num_clients": num_clients,
        "clients_per_round": min(SAMPLED, num_clients),
        "rounds": rounds,
        # The quickstart's 0.1 diverged on synthetic_mnist at 600 examples a client (chance
        # accuracy at 10 and 100 clients); 0.01 learns at every size.
        "train.learning_rate": 0.01,
    }
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    return [sys.executable, "-m", "fedshield.cli", "run", "quickstart", *sets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="*", default=[10, 100, 1_000, 10_000])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"fedshield-scale-bench-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# benchmarks/scaling.py  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
        f"{platform.python_version()}  {os.cpu_count()} CPUs  {args.rounds} rounds",
        f"# start: {load()}",
        "",
        "engine extractor, one sweep (ms): delivering the round's messages, then idle",
        "| nodes | messages | Flower, delivering | Flower, idle | fedshield, delivering "
        "| fedshield, idle |",
        "|---|---|---|---|---|---|",
        *(extractor_row(n) for n in sorted(args.clients)),
        "",
        "| clients | sampled | start-up (s) | steady round (s) | whole run (s) "
        "| peak RSS, tree (GiB) | final accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for num_clients in args.clients:
        m = measure_command(
            command(num_clients, args.rounds),
            workdir,
            rounds=args.rounds,
            name=f"{num_clients} clients",
        )
        row = (
            f"| {num_clients} | {min(SAMPLED, num_clients)} | {m.first_round:.1f} "
            f"| {m.steady_round:.2f} | {m.whole:.1f} | {m.peak_rss:.2f} | {m.accuracy:.4f} |"
        )
        lines.append(row)
        print(f"{row}  ({load()})", flush=True)
        if args.out:  # row by row: a long sweep of sizes keeps what it measured
            atomic_write_text(args.out, "\n".join(lines) + "\n")
    lines.append(f"# end: {load()}")
    print(lines[-1], flush=True)
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

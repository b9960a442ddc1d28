"""Issue 12's speed target: a 12-cell grid of the quickstart (3 rounds each), five ways.

1. ``fedshield run`` twelve times, one process per cell (what a shell loop does today);
2. ``fedshield sweep`` of the same grid on Flower's Ray backend (the cells share one warm
   session);
3. the same sweep with ``simulation.backend = "process"`` (the ClientApp in the driver, no Ray:
   :mod:`fedshield.process_backend`), in one session;
4. the same with ``--jobs`` set to the machine's cores (the grid cut into that many sessions,
   side by side);
5. a plain single-process loop doing the same training with the same building blocks (each
   client's local training, its update attack, the aggregation chain, the evaluation) and no
   Flower, no Ray: the floor.

Each way is timed as a whole process, from the command to its exit (interpreter start and the
TensorFlow import included), because that is what a user waits for; the plain loop's own time
without its imports is printed beside it.

Target: sweep <= 0.5x the separate runs and <= 1.0x the plain loop. Wall seconds of each, the
final accuracy of every cell by each way (they must agree exactly).

    PYTHONPATH=. .venv/bin/python benchmarks/sweep.py --out benchmarks/results/sweep.txt
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GRID = """\
base = "quickstart"

[overrides]
name = "bench"
rounds = 3

[sweep]
"defense.aggregator" = ["fedavg", "median"]
"attack.type" = ["sign_flip", "gaussian"]
seed = [1, 2, 3]
"""
FIXED = {"attack.malicious": 2}


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _cells(grid_path: Path) -> list[dict[str, object]]:
    from fedshield.sweep.grid import load_grid

    return [cell.coordinates for cell in load_grid(str(grid_path)).cells()]


def separate_runs(grid_path: Path, work: Path) -> tuple[float, list[float]]:
    """Twelve ``fedshield run`` processes; wall seconds and each cell's final accuracy."""
    accuracies = []
    started = time.perf_counter()
    for index, coordinates in enumerate(_cells(grid_path)):
        output = work / f"run{index}"
        sets = [f"{k}={json.dumps(v)}" for k, v in {**coordinates, **FIXED}.items()]
        sets += ['name="bench"', "rounds=3", f'output="{output}"']
        command = [sys.executable, "-m", "fedshield.cli", "run", "quickstart"]
        command += [arg for item in sets for arg in ("--set", item)]
        subprocess.run(command, check=True, env=_environment(), stdout=subprocess.DEVNULL)
        (run_dir,) = output.iterdir()
        accuracies.append(json.loads((run_dir / "summary.json").read_text())["final_accuracy"])
    return time.perf_counter() - started, accuracies


def sweep(grid_path: Path, work: Path, *options: str) -> tuple[float, list[float]]:
    """One ``fedshield sweep`` process; wall seconds and each cell's final accuracy."""
    out = work / f"sweep-{grid_path.stem}-{len(options)}"
    command = [sys.executable, "-m", "fedshield.cli", "sweep", str(grid_path), "--out", str(out)]
    command += options
    started = time.perf_counter()
    subprocess.run(command, check=True, env=_environment())
    seconds = time.perf_counter() - started
    index = json.loads((out / "sweep.json").read_text())
    accuracies = [
        json.loads((out / c["dir"] / "summary.json").read_text())["final_accuracy"]
        for c in index["cells"]
    ]
    return seconds, accuracies


def plain_loop_process(grid_path: Path) -> tuple[float, list[float], float]:
    """:func:`plain_loop` in its own process: whole-process wall seconds, each cell's final
    accuracy, and the loop's own seconds (imports excluded)."""
    command = [sys.executable, __file__, "--plain-loop", str(grid_path)]
    started = time.perf_counter()
    done = subprocess.run(command, check=True, env=_environment(), capture_output=True)
    seconds = time.perf_counter() - started
    inner = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return seconds, inner["accuracies"], inner["seconds"]


def plain_loop(grid_path: Path) -> tuple[float, list[float]]:
    """The same training in one process, no Flower, no Ray: the floor a sweep is held to."""
    from clients.poisoning import active_plan, poisoned_update, training_shard
    from common.arrays import flatten, unflatten
    from common.data.shards import dataset_of
    from common.learning.training import compiled_model, train_locally
    from common.seeding import derive_rng, derive_seed
    from fedshield.sweep.grid import load_grid
    from scenarios.loader import set_fields, validate_document
    from server.app import initial_weights
    from server.evaluation import Evaluator
    from strategies import build_chain

    accuracies = []
    started = time.perf_counter()
    for cell in load_grid(str(grid_path)).cells():
        scenario = validate_document(set_fields(cell.document, FIXED.items()))
        dataset = dataset_of(scenario)
        weights = initial_weights(scenario, dataset.input_shape, dataset.num_classes)
        chain = build_chain(scenario.defense.aggregator, scenario.defense.params)
        state = chain.init(sum(w.size for w in weights))
        evaluator = Evaluator(model_name=scenario.model.name, dataset=dataset, success_set=None)
        model = compiled_model(scenario, dataset.input_shape, dataset.num_classes, dp=False)
        evaluator.evaluate(weights)  # round 0, as a run records it
        for server_round in range(1, scenario.rounds + 1):
            deltas, counts = [], []
            for client in range(scenario.data.num_clients):
                plan = active_plan(scenario, client, server_round)
                x, y = training_shard(scenario, client, plan)
                seed = derive_seed(scenario.seed, "train", server_round, client)
                trained = train_locally(
                    model, weights, x, y, scenario=scenario, seed=seed, dp=False
                ).weights
                rng = derive_rng(scenario.seed, "update-attack", server_round, client)
                sent, count = poisoned_update(plan, weights, trained, len(y), rng)
                deltas.append(flatten(sent) - flatten(weights))
                counts.append(count)
            order = derive_rng(scenario.seed, "shuffle", server_round).permutation(len(deltas))
            step, state = chain.update(
                np.stack(deltas)[order],
                np.asarray(counts)[order],
                state,
                rng=derive_rng(scenario.seed, "aggregate", server_round),
                reference=None,
            )
            weights = unflatten(flatten(weights) + np.asarray(step, np.float32), weights)
            accuracy = evaluator.evaluate(weights)["accuracy"]
        accuracies.append(accuracy)
    return time.perf_counter() - started, accuracies


def main() -> None:
    """Run the three ways, print a table, write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--plain-loop", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_loop is not None:  # the floor's own process (plain_loop_process)
        seconds, accuracies = plain_loop(args.plain_loop)
        print(json.dumps({"seconds": seconds, "accuracies": accuracies}))
        return
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        work = Path(tmp)
        grid_path = work / "bench.toml"
        overrides = "".join(f'"{k}" = {v}\n' for k, v in FIXED.items())
        grid_path.write_text(GRID.replace("rounds = 3\n", f"rounds = 3\n{overrides}"))
        process_grid = work / "process.toml"
        backend = 'rounds = 3\n"simulation.backend" = "process"\n'
        process_grid.write_text(grid_path.read_text().replace("rounds = 3\n", backend))
        jobs = str(os.cpu_count() or 1)
        load = os.getloadavg()[0]
        results = {
            "12 x fedshield run": separate_runs(grid_path, work),
            "fedshield sweep (Ray backend)": sweep(grid_path, work),
            "fedshield sweep (process backend)": sweep(process_grid, work),
            f"fedshield sweep (process backend, --jobs {jobs})": sweep(
                process_grid, work, "--jobs", jobs
            ),
        }
        floor_s, floor_acc, loop_s = plain_loop_process(grid_path)
        results["plain loop (floor)"] = (floor_s, floor_acc)
    lines = _table(results, load, os.getloadavg()[0], loop_s)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


def _table(
    results: dict[str, tuple[float, list[float]]],
    load_start: float,
    load_end: float,
    loop_seconds: float,
) -> list[str]:
    names = list(results)
    runs, floor = results[names[0]][0], results[names[-1]][0]
    lines = [
        f"# benchmarks/sweep.py: 12 cells of quickstart (10 clients), 3 rounds each; "
        f"{os.cpu_count()} cores, load average {load_start:.1f} at start, {load_end:.1f} at end",
        "",
        "| way | wall (s) | per cell (s) | / separate runs (target <= 0.5) | / plain loop "
        "(target <= 1.0) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {s:.1f} | {s / 12:.2f} | {s / runs:.2f}x | {s / floor:.2f}x |"
        for name, (s, _) in results.items()
    ]
    lines += [
        "",
        f"(the plain loop's process spent {floor - loop_seconds:.1f} s starting and importing, "
        f"{loop_seconds:.1f} s in the loop itself)",
        "",
        "final accuracy per cell (" + " | ".join(names) + "):",
    ]
    columns = zip(*(acc for _, acc in results.values()), strict=True)
    lines += [" | ".join(f"{a:.4f}" for a in row) for row in columns]
    return lines


if __name__ == "__main__":
    main()

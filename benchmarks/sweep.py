"""Issue 12's speed target: a 12-cell grid of the quickstart (3 rounds each), six ways.

1. ``fedshield run`` twelve times, one process per cell (what a shell loop does today);
2. ``fedshield sweep`` of the same grid on Flower's Ray backend (the cells share one warm
   session);
3. the same sweep with ``simulation.backend = "process"`` (the ClientApp in the driver, no Ray:
   :mod:`fedshield.process_backend`), in one session;
4. the same with ``--jobs`` set to the machine's cores (the grid cut into that many sessions,
   side by side, in processes forked from the sweep after its imports:
   :mod:`fedshield.sweep.forked`);
5. a plain single-process loop doing the same training with the same building blocks (each
   client's local training, its update attack, the aggregation chain, the evaluation) and no
   Flower, no Ray: the floor;
6. the same loop sized as the sweep's clients are (``simulation.num_cpus = 1``):
   :func:`common.tf_runtime.configure_tensorflow` gives TensorFlow's thread pools and numpy's
   OpenBLAS one thread each (and TF's deterministic kernels): a plain loop tuned the way the
   sweep is.

Each way is timed as a whole process, from the command to its exit (interpreter start and the
TensorFlow import included), because that is what a user waits for; the plain loop's own time
without its imports is printed beside it. The machine this runs on changes speed by up to 2x
over minutes (a shared host), so every way but the first runs ``--repeats`` times, the ways in
turn and the first of them rotating, and the table gives the median (with the range); the
twelve separate runs, far from their target, run once.

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
from collections.abc import Callable
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
    out = Path(tempfile.mkdtemp(prefix=f"sweep-{grid_path.stem}-", dir=work))  # fresh: no resume
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


def plain_loop_process(grid_path: Path, threads: int | None) -> tuple[float, list[float], float]:
    """:func:`plain_loop` in its own process (``threads``: TF's pools sized so, None: TF's
    default): whole-process wall seconds, each cell's final accuracy, and the loop's own seconds
    (imports excluded)."""
    command = [sys.executable, __file__, "--plain-loop", str(grid_path)]
    command += [] if threads is None else ["--threads", str(threads)]
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


Way = Callable[[], tuple[float, list[float]]]
FLOOR = "plain loop (floor)"
TUNED = "plain loop, sized as a session (one thread)"


def _ways(
    grid_path: Path, process_grid: Path, work: Path, loops: dict[str, float]
) -> dict[str, Way]:
    """The repeated ways, by name; the loops record their own seconds in ``loops``."""
    jobs = str(os.cpu_count() or 1)

    def loop(threads: int | None, name: str) -> tuple[float, list[float]]:
        seconds, accuracies, inner = plain_loop_process(grid_path, threads)
        loops[name] = min(loops.get(name, inner), inner)
        return seconds, accuracies

    return {
        "fedshield sweep (Ray backend)": lambda: sweep(grid_path, work),
        "fedshield sweep (process backend)": lambda: sweep(process_grid, work),
        f"fedshield sweep (process backend, --jobs {jobs})": lambda: sweep(
            process_grid, work, "--jobs", jobs
        ),
        FLOOR: lambda: loop(None, FLOOR),
        TUNED: lambda: loop(1, TUNED),
    }


def main() -> None:
    """Run the six ways, print a table, write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plain-loop", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_loop is not None:  # the floor's own process (plain_loop_process)
        if args.threads is not None:  # the sizing a process-backend session applies
            from common.tf_runtime import configure_tensorflow

            configure_tensorflow(args.threads)
        seconds, accuracies = plain_loop(args.plain_loop)
        print(json.dumps({"seconds": seconds, "accuracies": accuracies}))
        return
    load = os.getloadavg()[0]
    loops: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        work = Path(tmp)
        grid_path = work / "bench.toml"
        overrides = "".join(f'"{k}" = {v}\n' for k, v in FIXED.items())
        grid_path.write_text(GRID.replace("rounds = 3\n", f"rounds = 3\n{overrides}"))
        process_grid = work / "process.toml"
        backend = 'rounds = 3\n"simulation.backend" = "process"\n'
        process_grid.write_text(grid_path.read_text().replace("rounds = 3\n", backend))
        runs = {"12 x fedshield run": [separate_runs(grid_path, work)]}
        ways = _ways(grid_path, process_grid, work, loops)
        names = list(ways)
        timed: dict[str, list[tuple[float, list[float]]]] = {name: [] for name in names}
        for repeat in range(args.repeats):
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                timed[name].append(ways[name]())
    lines = _table({**runs, **timed}, load, os.getloadavg()[0], loops)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


def _table(
    results: dict[str, list[tuple[float, list[float]]]],
    load_start: float,
    load_end: float,
    loops: dict[str, float],
) -> list[str]:
    """Medians (and ranges) of each way, their ratios, every cell's accuracy by each way."""
    wall = {name: float(np.median([s for s, _ in tries])) for name, tries in results.items()}
    runs, floor, tuned = wall["12 x fedshield run"], wall[FLOOR], wall[TUNED]
    repeats = max(len(tries) for tries in results.values())
    lines = [
        f"# benchmarks/sweep.py: 12 cells of quickstart (10 clients), 3 rounds each; "
        f"{os.cpu_count()} cores, load average {load_start:.1f} at start, {load_end:.1f} at end; "
        f"median of {repeats} runs of each way (range in brackets), the separate runs once",
        "",
        "| way | wall (s) | per cell (s) | / separate runs (target <= 0.5) | / plain loop "
        "(target <= 1.0) | / plain loop, sized as a session |",
        "|---|---|---|---|---|---|",
    ]
    for name, tries in results.items():
        seconds = [s for s, _ in tries]
        spread = f" [{min(seconds):.1f}-{max(seconds):.1f}]" if len(seconds) > 1 else ""
        w = wall[name]
        lines.append(
            f"| {name} | {w:.1f}{spread} | {w / 12:.2f} | {w / runs:.2f}x | {w / floor:.2f}x "
            f"| {w / tuned:.2f}x |"
        )
    lines += ["", "(the plain loops' own time, imports excluded, best run: "]
    lines[-1] += "; ".join(f"{name} {s:.1f} s" for name, s in loops.items()) + ")"
    names = list(results)
    lines += ["", "final accuracy per cell, first run of each way (" + " | ".join(names) + "):"]
    columns = zip(*(tries[0][1] for tries in results.values()), strict=True)
    lines += [" | ".join(f"{a:.4f}" for a in row) for row in columns]
    agree = all(acc == tries[0][1] for tries in results.values() for _, acc in tries)
    lines += ["", f"every run of every way gives these accuracies exactly: {agree}"]
    return lines


if __name__ == "__main__":
    main()

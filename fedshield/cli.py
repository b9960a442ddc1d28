"""``fedshield`` command line: run, sweep, validate, list, verify, keys generate, watermark
verify, report, data fetch.

Every user error is a :class:`FedshieldError` printed on one line (``error: ...``) with exit
code 2; nothing reaches TensorFlow or Ray before the scenario has been validated.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.collector import skip_final_collection
from common.errors import FedshieldError
from common.tf_runtime import quiet_environment
from fedshield.cli_integrity import INTEGRITY_COMMANDS, add_integrity_commands


def _sweep_command(commands: Any) -> None:
    """``sweep GRID``: every cell of a grid file (docs/sweeps.md)."""
    sweep = commands.add_parser("sweep", help="run a grid of scenarios; rerun to resume")
    sweep.add_argument("grid", help="path to a grid TOML file, or a packaged grid name")
    sweep.add_argument("--out", default=None, help="sweep directory (default OUTPUT/sweep-GRID)")
    sweep.add_argument(
        "--skip-invalid", action="store_true", help="run the valid cells when some are invalid"
    )
    sweep.add_argument("--verbose", action="store_true", help="round lines, Flower, Ray, TF logs")
    sweep.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        help="sessions at once on this machine, in child processes (default 1; see docs/sweeps.md)",
    )
    _ray_address(sweep)


def _jobs(text: str) -> int:
    """``--jobs``: a whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a whole number >= 1")
    return int(text)


def _ray_address(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--ray-address",
        default=None,
        help="attach to the running Ray cluster at this address (default: $RAY_ADDRESS; "
        "without either, a private local Ray); see docs/scaling.md",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedshield", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def scenario_args(sub: argparse.ArgumentParser, nargs: str | None = None) -> None:
        sub.add_argument(
            "scenario",
            nargs=nargs,
            help="path to a scenario TOML file, or a packaged scenario name",
        )
        sub.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one field, e.g. --set train.local_epochs=2 (repeatable)",
        )

    run = commands.add_parser("run", help="run a scenario end to end")
    scenario_args(run, nargs="?")
    run.add_argument("--verbose", action="store_true", help="show Flower, Ray and TF logs")
    run.add_argument(
        "--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last complete round"
    )
    _ray_address(run)
    _sweep_command(commands)
    validate = commands.add_parser("validate", help="validate a scenario without running it")
    scenario_args(validate)
    listing = commands.add_parser("list", help="list registered plug-ins and packaged scenarios")
    listing.add_argument(
        "kind",
        nargs="?",
        choices=[
            "datasets",
            "partitioners",
            "models",
            "aggregators",
            "pre-aggregators",
            "server-optimizers",
            "attacks",
            "scenarios",
        ],
    )
    add_integrity_commands(commands)
    _results_commands(commands)
    return parser


def _results_commands(commands: Any) -> None:
    """``report`` (tables and figures from stored runs) and ``data fetch``."""
    report = commands.add_parser(
        "report", help="tables, figures and report.md from stored runs (a sweep or single runs)"
    )
    report.add_argument("directory", help="a sweep directory, or a directory of run directories")
    data = commands.add_parser("data", help="dataset tools")
    fetch = data.add_subparsers(dest="data_command", required=True).add_parser(
        "fetch", help="download a dataset's files into the cache (checksums verified)"
    )
    fetch.add_argument("name", help="mnist, fashion_mnist or cifar10")
    fetch.add_argument("--data-dir", help="directory to fill (default: Keras's cache)")
    fetch.add_argument("--mirror", help="base URL or local directory holding the files")


def _cmd_run(args: argparse.Namespace) -> int:
    from fedshield.ray_cluster import cluster_address
    from fedshield.resume import resumed_scenario
    from fedshield.runner import Interrupted, run_scenario
    from scenarios.loader import load_scenario

    if args.resume is not None:
        scenario = resumed_scenario(args.resume, args.scenario, args.overrides)
    elif args.scenario is None:
        raise FedshieldError("run: give a scenario, or --resume RUN_DIR")
    else:
        scenario = load_scenario(args.scenario, args.overrides)
    resume = None if args.resume is None else Path(args.resume)
    try:
        result = run_scenario(
            scenario,
            verbose=args.verbose,
            resume=resume,
            ray_address=cluster_address(args.ray_address),
        )
    except Interrupted as stopped:  # Ctrl-C or SIGTERM: one line, the shell's exit code
        print(stopped, file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt:  # Ctrl-C while Ray was starting, before the handlers were set
        print("interrupted by SIGINT before the run started", file=sys.stderr)
        return 130
    s = result.summary
    print(
        f"done: final accuracy {s['final_accuracy']:.4f} (best {s['best_accuracy']:.4f} at round "
        f"{s['best_round']}) in {s['wall_seconds']:.1f}s; files in {result.run_dir}"
    )
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from fedshield.ray_cluster import cluster_address
    from fedshield.runner import Interrupted
    from fedshield.sweep.execute import run_sweep

    address = cluster_address(args.ray_address)
    if address is not None and args.jobs > 1:
        raise FedshieldError(
            f"--jobs: got {args.jobs}; on a Ray cluster (--ray-address or $RAY_ADDRESS) the "
            "cluster's actors decide how many groups run at once, so leave --jobs out"
        )
    try:
        return run_sweep(
            args.grid,
            command=shlex.join(["fedshield", *args.argv]),
            output=args.out,
            skip_invalid=args.skip_invalid,
            verbose=args.verbose,
            ray_address=address,
            jobs=args.jobs,
        )
    except Interrupted as stopped:
        print(stopped, file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt:  # Ctrl-C between sessions, while no handler was set
        print("interrupted by SIGINT; rerun the same command to resume", file=sys.stderr)
        return 130


def _cmd_validate(args: argparse.Namespace) -> int:
    from scenarios.loader import load_scenario

    s = load_scenario(args.scenario, args.overrides)
    print(
        f"ok: {s.name} (seed {s.seed}, {s.rounds} rounds, {s.data.num_clients} clients on "
        f"{s.data.dataset}, {s.num_sampled} per round, aggregator {s.defense.aggregator}, "
        f"attack {'+'.join(s.attack.names)})"
    )
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from attacks import ATTACKS
    from common.data.datasets import DATASETS
    from common.data.partitioners import PARTITIONERS
    from common.learning.models import MODELS
    from common.registry import Registry
    from scenarios.loader import packaged_scenarios
    from strategies import AGGREGATORS, PRE_AGGREGATORS, SERVER_OPTIMIZERS

    registries: dict[str, Registry[Any]] = {
        "datasets": DATASETS,
        "partitioners": PARTITIONERS,
        "models": MODELS,
        "aggregators": AGGREGATORS,
        "pre-aggregators": PRE_AGGREGATORS,
        "server-optimizers": SERVER_OPTIMIZERS,
        "attacks": ATTACKS,
    }
    for kind, registry in registries.items():
        if args.kind not in (None, kind):
            continue
        print(f"{kind}:")
        for name in registry:
            entry = registry[name]
            tags = "".join(f" [{k}: {v}]" for k, v in sorted(entry.tags.items()))
            print(f"  {name}{tags}: {entry.summary}")
            if params := entry.describe_params():
                print(f"      params: {params}")
    if args.kind in (None, "scenarios"):
        print("scenarios:")
        for name in packaged_scenarios():
            print(f"  {name}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from fedshield.report import write_report

    path, runs = write_report(Path(args.directory))
    for note in runs.skipped:
        print(f"skipped {note}", file=sys.stderr)
    print(f"ok: {len(runs.runs)} runs reported in {path} ({len(runs.skipped)} skipped)")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from fedshield.data_fetch import fetch_dataset

    for path in fetch_dataset(args.name, data_dir=args.data_dir, mirror=args.mirror):
        print(f"ok: {path}")
    return 0


_COMMANDS = {
    "data": _cmd_data,
    "run": _cmd_run,
    "sweep": _cmd_sweep,
    "validate": _cmd_validate,
    "list": _cmd_list,
    **INTEGRITY_COMMANDS,
    "report": _cmd_report,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fedshield`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # the exact command, recorded by a sweep
    # Before anything imports TensorFlow or Flower, so neither logs before the settings apply.
    quiet_environment(verbose=getattr(args, "verbose", False))
    try:
        return _COMMANDS[args.command](args)
    except FedshieldError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def script() -> int:
    """The ``fedshield`` console script and ``python -m fedshield.cli``: :func:`main`, then a
    quick exit.

    The interpreter's final full collection is skipped (:mod:`common.collector`: 1 to 2 s
    after a 12-cell sweep). Not in :func:`main`, which tests call in their own process.
    """
    code = main()
    skip_final_collection()
    return code


if __name__ == "__main__":
    sys.exit(script())

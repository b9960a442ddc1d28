"""Benchmark every aggregation rule against Flower 1.23's own implementations.

For each n (clients) and d (parameters) it times our rule on a stacked float32 ``(n, d)``
array, Flower's legacy ``flwr.server.strategy.aggregate`` function on a list of ndarrays, and
the Message-API strategy's ``aggregate_train`` on real reply Messages (which includes
deserialising the replies; the ``stack`` row times that step for our path). It prints seconds,
the speed-up ``flower / ours`` and whether the results agree where the definitions coincide.

    python benchmarks/aggregators.py --out benchmarks/results/aggregators.txt
    python benchmarks/aggregators.py --quick

Flower cases whose time, extrapolated linearly in d from the previous d, exceeds ``--cap``
seconds are reported as skipped rather than run (Flower's legacy Bulyan takes minutes).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flwr  # noqa: E402
import numpy as np  # noqa: E402
from flwr.common import ArrayRecord, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.common.logger import FLOWER_LOGGER  # noqa: E402
from flwr.server.strategy import aggregate as legacy  # noqa: E402
from flwr.serverapp import strategy as message_api  # noqa: E402
from flwr.serverapp.strategy.bulyan import aggregate_n_closest_weights  # noqa: E402
from flwr.serverapp.strategy.multikrum import select_multikrum  # noqa: E402

import strategies  # noqa: E402
from common.results import atomic_write_text  # noqa: E402

FLOWER_LOGGER.setLevel(logging.WARNING)
Array = np.ndarray[Any, Any]
Results = list[tuple[list[Array], int]]


@dataclass(frozen=True)
class Bench:
    """One rule: our configuration and Flower's counterparts (None where Flower has none)."""

    label: str
    name: str
    params: dict[str, Any]
    pre: tuple[tuple[str, dict[str, Any]], ...] = ()
    legacy: Callable[[Results], Array] | None = None
    message: Callable[[], message_api.FedAvg] | None = None
    helpers: Callable[[list[RecordDict]], Array] | None = None
    """The Message-API strategy's own helper functions, called directly on the arrays."""
    same_definition: bool = True
    """Whether Flower's results should equal ours (else only timed)."""
    legacy_power: int = 1
    """Flower legacy's cost grows like n**power * d (Python double loop over pairs: 2)."""


def benches(n: int) -> list[Bench]:
    f = max(1, n // 10)
    m = n - f
    trimmed = f  # Flower: int(beta * n) per tail
    beta = (trimmed + 0.5) / n
    return [
        Bench(
            "fedavg",
            "fedavg",
            {},
            legacy=lambda r: legacy.aggregate(r)[0],
            message=lambda: message_api.FedAvg(),
        ),
        Bench("norm_bounding", "norm_bounding", {"max_norm": 1.0}),
        Bench(
            "median",
            "median",
            {},
            legacy=lambda r: legacy.aggregate_median(r)[0],
            message=lambda: message_api.FedMedian(),
        ),
        Bench(
            f"trimmed_mean b={trimmed}",
            "trimmed_mean",
            {"num_trimmed": trimmed},
            legacy=lambda r: legacy.aggregate_trimmed_avg(r, beta)[0],
            message=lambda: message_api.FedTrimmedAvg(beta=beta),
        ),
        Bench(
            f"krum f={f}",
            "krum",
            {"num_byzantine": f},
            legacy=lambda r: legacy.aggregate_krum(r, f, 0)[0],
            legacy_power=2,
            message=lambda: message_api.Krum(num_malicious_nodes=f),
        ),
        Bench(
            f"multi_krum f={f} m={m}",
            "multi_krum",
            {"num_byzantine": f, "num_selected": m},
            legacy=lambda r: legacy.aggregate_krum(r, f, m)[0],
            legacy_power=2,
            message=lambda: message_api.MultiKrum(num_malicious_nodes=f, num_nodes_to_select=m),
        ),
        Bench(
            f"bulyan f={f}",
            "bulyan",
            {"num_byzantine": f},
            legacy=lambda r: legacy.aggregate_bulyan(list(r), f, legacy.aggregate_krum, to_keep=0)[
                0
            ],
            legacy_power=3,
        ),
        Bench(
            f"bulyan f={f} vs Message-API",
            "bulyan",
            {"num_byzantine": f},
            message=lambda: message_api.Bulyan(num_malicious_nodes=f),
            same_definition=False,
        ),
        Bench(
            f"bulyan f={f} vs its helpers",
            "bulyan",
            {"num_byzantine": f},
            helpers=partial(message_api_bulyan_helpers, f=f),
            same_definition=False,
        ),
        Bench("geometric_median", "geometric_median", {}),
        Bench("centered_clipping L=3", "centered_clipping", {"radius": 1.0, "iterations": 3}),
        # DnC and SignGuard: not in Flower 1.23
        Bench(f"dnc f={f}", "dnc", {"num_byzantine": f}),
        Bench("signguard", "signguard", {}),
        Bench("fltrust", "fltrust", {}),  # not in Flower 1.23 either
        Bench(
            f"nnm+krum f={f}", "krum", {"num_byzantine": f}, pre=(("nnm", {"num_byzantine": f}),)
        ),
        Bench("bucketing(s=2)+median", "median", {}, pre=(("bucketing", {"bucket_size": 2}),)),
    ]


def message_api_bulyan_helpers(contents: list[RecordDict], f: int) -> Array:
    """Flower's Message-API Bulyan without ``aggregate_train``'s per-reply ``gc.collect()``:
    its own ``select_multikrum`` and ``aggregate_n_closest_weights`` on the reply contents."""
    n = len(contents)
    theta, beta = n - 2 * f, n - 4 * f
    chosen = select_multikrum(contents, f, theta)
    selected = [cast(ArrayRecord, c["arrays"]).to_numpy_ndarrays() for c in chosen]
    median = [np.median(np.stack(layer), axis=0) for layer in zip(*selected, strict=True)]
    return aggregate_n_closest_weights(median, selected, beta)[0]


def best_of(
    prepare: Callable[[], Any], run: Callable[[Any], Array], repeats: int
) -> tuple[float, Array]:
    """Seconds of ``run(prepare())``, ``prepare`` untimed; best of ``repeats`` for runs under
    5 s (other jobs share the CPU), one run above."""
    best, out = np.inf, None
    for attempt in range(repeats):
        if attempt and best >= 5.0:
            break  # long runs are stable enough; do not spend minutes repeating them
        args = prepare()
        gc.collect()
        start = time.perf_counter()
        out = run(args)
        best = min(best, time.perf_counter() - start)
    assert out is not None
    return best, out


def replies(updates: Array, num_examples: Array) -> list[Message]:
    """Real train replies as the server receives them (arrays serialised in ArrayRecords)."""
    out = []
    for node, content in enumerate(contents(updates, num_examples), start=1):
        ins = Message(RecordDict({}), dst_node_id=node, message_type="train")
        out.append(Message(content, reply_to=ins))
    return out


def contents(updates: Array, num_examples: Array) -> list[RecordDict]:
    return [
        RecordDict(
            {
                "arrays": ArrayRecord([row.copy()]),
                "metrics": MetricRecord({"num-examples": int(count)}),
            }
        )
        for row, count in zip(updates, num_examples, strict=True)
    ]


def run_message(factory: Callable[[], message_api.FedAvg], msgs: list[Message]) -> Array:
    arrays, _ = factory().aggregate_train(1, msgs)
    assert arrays is not None
    return arrays.to_numpy_ndarrays()[0]


def stack_replies(msgs: list[Message]) -> Array:
    return np.stack(
        [np.concatenate(cast(ArrayRecord, m.content["arrays"]).to_numpy_ndarrays()) for m in msgs]
    )


def apply(rule: strategies.Rule, args: tuple[Array, Array, Array | None]) -> Array:
    updates, counts, reference = args
    return rule(updates, counts, reference=reference)


def agree(ours: Array, theirs: Array) -> str:
    ok = np.allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    return "yes" if ok else f"NO (max|diff| {np.max(np.abs(ours - theirs)):.1e})"


@dataclass(frozen=True)
class Flower:
    """One Flower implementation of a bench: how to prepare its input and what to time."""

    column: str
    power: int
    prepare: Callable[[], Any]
    run: Callable[[Any], Array]


def flower_impls(bench: Bench, updates: Array, counts: Array) -> list[Flower]:
    results = [([row], int(count)) for row, count in zip(updates, counts, strict=True)]
    impls = []
    if bench.legacy is not None:
        impls.append(Flower("legacy", bench.legacy_power, lambda: results, bench.legacy))
    if bench.helpers is not None:
        impls.append(
            Flower("message-api helpers", 1, partial(contents, updates, counts), bench.helpers)
        )
    if bench.message is not None:
        # replies are consumed (FedMedian pops arrays), so each run gets fresh ones, untimed
        impls.append(
            Flower(
                "message-api",
                1,
                partial(replies, updates, counts),
                partial(run_message, bench.message),
            )
        )
    return impls


def rows(sizes: list[int], dims: list[int], cap: float, repeats: int) -> Iterator[str]:
    # (column, bench index) -> seconds / (n**power * d) of the last run, to skip slow cases
    rate: dict[tuple[str, int], float] = {}
    for d in dims:
        for n in sizes:
            rng = np.random.default_rng(n * 7919 + d)
            updates = rng.normal(0.0, 0.01, size=(n, d)).astype(np.float32)
            num_examples = rng.integers(50, 500, size=n).astype(np.int64)
            equal_counts = np.full(n, 100, dtype=np.int64)
            stack_s, _ = best_of(partial(replies, updates, equal_counts), stack_replies, repeats)
            yield f"n={n} d={d:.0e}: stack (Message replies -> (n, d) float32): {stack_s:.3f} s"
            for index, bench in enumerate(benches(n)):
                rule = strategies.build_chain(bench.name, bench.params, bench.pre)
                has_flower = (bench.legacy, bench.message, bench.helpers) != (None, None, None)
                # Flower's Multi-Krum weights by counts and ours does not: equal counts agree
                counts = equal_counts if has_flower else num_examples
                # FLTrust's server update (TF training on the root set, not aggregation work):
                # the mean update stands in for it, computed outside the timing.
                reference = updates.mean(axis=0) if rule.needs_reference() else None
                mine, ours = best_of(
                    partial(tuple, (updates, counts, reference)), partial(apply, rule), repeats
                )
                line = f"  {bench.label:28s} ours {mine:8.3f} s"
                for impl in flower_impls(bench, updates, counts):
                    key, size = (impl.column, index), float(n) ** impl.power * d
                    line += f" | {impl.column} "
                    if key in rate and rate[key] * size > cap:
                        line += f"skipped (> {cap:.0f} s: predicted {rate[key] * size:.0f} s)"
                        continue
                    seconds, theirs = best_of(impl.prepare, impl.run, repeats)
                    rate[key] = seconds / size
                    verdict = (
                        agree(ours, theirs) if bench.same_definition else "n/a (other definition)"
                    )
                    line += f"{seconds:8.3f} s {seconds / mine:6.1f}x agree={verdict}"
                yield line


def header(args: argparse.Namespace) -> list[str]:
    return [
        "fedshield aggregator benchmark (seconds; Nx = Flower time / our time)",
        f"python {platform.python_version()}, numpy {np.__version__}, flwr {flwr.__version__},"
        f" {os.cpu_count()} CPUs, {platform.machine()}",
        f"updates float32 N(0, 0.01); f = max(1, n // 10); cap {args.cap:.0f} s;"
        f" best of {args.repeats} for runs under 5 s, after one untimed warm-up pass at n=10 d=1e4",
        "message-api times include deserialising the replies (the 'stack' line is that cost"
        " for our path, not included in 'ours')",
        load_line("start"),
        "",
    ]


def load_line(when: str) -> str:
    """The 1/5/15-minute load averages: other jobs share the CPU, so say how busy it was."""
    one, five, fifteen = os.getloadavg()
    return f"load average at {when}: {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n in {10, 20}, d in {1e4, 1e5}")
    parser.add_argument("--cap", type=float, default=60.0, help="skip Flower cases above this")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    sizes, dims = ([10, 20], [10**4, 10**5]) if args.quick else ([10, 50, 100], [10**5, 10**6])
    lines = header(args)
    for line in lines:
        print(line, flush=True)
    # One untimed pass at a tiny size first: imports (sklearn for SignGuard), BLAS thread
    # start-up and first-call costs would otherwise land on the first timed case.
    for _ in rows([10], [10**4], args.cap, 1):
        pass
    for line in rows(sizes, dims, args.cap, args.repeats):
        print(line, flush=True)
        lines.append(line)
    lines.append(load_line("end"))
    print(lines[-1])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

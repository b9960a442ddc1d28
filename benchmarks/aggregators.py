"""Benchmark every aggregation rule against its peers: Flower 1.23 and ByzFL (numpy path).

For each size (n clients, d parameters) it times our rule on a stacked float32 ``(n, d)``
array against:

* Flower's legacy ``flwr.server.strategy.aggregate`` functions on a list of ndarrays, and the
  Message-API strategy's ``aggregate_train`` on real reply Messages (which includes
  deserialising the replies; the ``stack`` line times that step for our path);
* ByzFL's aggregators and pre-aggregators, numpy path, reimplemented operation for operation
  in ``benchmarks/byzfl_numpy.py`` (ByzFL itself imports torch; see that module for the source
  file and commit of each).

Contenders run in turn (the first one rotating), ``--repeats`` rounds, and each figure is
the median of its rounds (other jobs share the CPU; the load average is printed at the start
and end). A contender
whose median passes 5 s stops repeating. ``peer/ours`` is the peer's median over ours, so
above 1 means we are faster; ``fastest`` is the ratio to the fastest peer of the row. Peaks
(``--memory`` rows) are tracemalloc peaks of one separate untimed run, input excluded.

    python benchmarks/aggregators.py --out benchmarks/results/aggregators.txt
    python benchmarks/aggregators.py --quick
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
from benchmarks import byzfl_numpy as byzfl  # noqa: E402
from common.results import atomic_write_text  # noqa: E402

FLOWER_LOGGER.setLevel(logging.WARNING)
Array = np.ndarray[Any, Any]
Results = list[tuple[list[Array], int]]
MiB = 1024.0**2
CLIP = 2.0  # ByzFL's default Clipping radius; rows of N(0, 0.01) have norm 0.01 sqrt(d) > 2


@dataclass(frozen=True)
class Bench:
    """One row: our configuration and its peers (None where a peer has no such rule)."""

    label: str
    name: str
    params: dict[str, Any]
    pre: tuple[tuple[str, dict[str, Any]], ...] = ()
    stage: bool = False
    """Time the pre-aggregator ``name`` alone (its ``(n', d)`` output), not a chain."""
    legacy: Callable[[Results], Array] | None = None
    message: Callable[[], message_api.FedAvg] | None = None
    helpers: Callable[[list[RecordDict]], Array] | None = None
    """The Message-API strategy's own helper functions, called directly on the arrays."""
    byzfl: Callable[[Array], Array] | None = None
    byzfl_mutates: bool = False
    """ByzFL writes to its input (Clipping): it gets a fresh copy per run, untimed."""
    byzfl_bytes: Callable[[int, int], int] | None = None
    """What ByzFL's version allocates at (n, d), to skip it above ``--mem-cap``."""
    same_definition: tuple[str, ...] = ("legacy", "message-api", "byzfl")
    """The peers whose results should equal ours (others are only timed)."""
    legacy_power: int = 1
    """Flower legacy's cost grows like n**power * d (Python double loop over pairs: 2)."""
    memory: bool = False


def benches(n: int) -> list[Bench]:
    f = max(1, n // 10)
    m = n - f
    beta = (f + 0.5) / n  # Flower: int(beta * n) = f per tail
    flower_only = ("legacy", "message-api")
    return [
        Bench(
            "fedavg",
            "fedavg",
            {},
            legacy=lambda r: legacy.aggregate(r)[0],
            message=lambda: message_api.FedAvg(),
            byzfl=byzfl.average,
        ),
        Bench(
            f"norm_bounding M={CLIP:g}",
            "norm_bounding",
            {"max_norm": CLIP},
            byzfl=lambda x: byzfl.average(byzfl.clipping(x, CLIP)),
            byzfl_mutates=True,
        ),
        Bench(
            "median",
            "median",
            {},
            legacy=lambda r: legacy.aggregate_median(r)[0],
            message=lambda: message_api.FedMedian(),
            byzfl=byzfl.median,
        ),
        Bench(
            f"trimmed_mean b={f}",
            "trimmed_mean",
            {"num_trimmed": f},
            legacy=lambda r: legacy.aggregate_trimmed_avg(r, beta)[0],
            message=lambda: message_api.FedTrimmedAvg(beta=beta),
            byzfl=partial(byzfl.trmean, f=f),
        ),
        Bench(
            f"krum f={f}",
            "krum",
            {"num_byzantine": f},
            legacy=lambda r: legacy.aggregate_krum(r, f, 0)[0],
            legacy_power=2,
            message=lambda: message_api.Krum(num_malicious_nodes=f),
            byzfl=partial(byzfl.krum, f=f),
            same_definition=flower_only,
        ),
        Bench(
            f"multi_krum f={f} m={m}",
            "multi_krum",
            {"num_byzantine": f, "num_selected": m},
            legacy=lambda r: legacy.aggregate_krum(r, f, m)[0],
            legacy_power=2,
            message=lambda: message_api.MultiKrum(num_malicious_nodes=f, num_nodes_to_select=m),
            byzfl=partial(byzfl.multi_krum, f=f),
            same_definition=flower_only,
        ),
        Bench(
            f"bulyan f={f}",
            "bulyan",
            {"num_byzantine": f},
            legacy=lambda r: legacy.aggregate_bulyan(list(r), f, legacy.aggregate_krum, to_keep=0)[
                0
            ],
            legacy_power=3,
            message=lambda: message_api.Bulyan(num_malicious_nodes=f),
            helpers=partial(message_api_bulyan_helpers, f=f),
            same_definition=("legacy",),
        ),
        Bench("geometric_median (defaults)", "geometric_median", {}),
        Bench(
            "geometric_median T=3 nu=0.1",
            "geometric_median",
            {"smoothing": 0.1, "max_iterations": 3, "tolerance": 0.0},
            byzfl=byzfl.geometric_median,
            same_definition=(),
        ),
        Bench(
            "centered_clipping L=3 tau=1",
            "centered_clipping",
            {"radius": 1.0, "iterations": 3},
            byzfl=partial(byzfl.centered_clipping, L=3, tau=1.0),
        ),
        Bench(f"dnc f={f}", "dnc", {"num_byzantine": f}),  # DnC, SignGuard, FLTrust: no peer
        Bench("signguard", "signguard", {}),
        Bench("fltrust", "fltrust", {}),
        Bench(
            f"clip M={CLIP:g} (stage)",
            "clip",
            {"max_norm": CLIP},
            stage=True,
            byzfl=partial(byzfl.clipping, c=CLIP),
            byzfl_mutates=True,
            memory=True,
        ),
        Bench(
            "bucketing s=2 (stage)",
            "bucketing",
            {"bucket_size": 2},
            stage=True,
            byzfl=partial(byzfl.bucketing, s=2),
            same_definition=(),  # its own np.random permutation
            memory=True,
        ),
        Bench(
            f"nnm f={f} (stage)",
            "nnm",
            {"num_byzantine": f},
            stage=True,
            byzfl=partial(byzfl.nnm, f=f),
            byzfl_bytes=lambda n_, d_: byzfl.nnm_bytes(n_, d_, f, 4),
        ),
        Bench(
            f"nnm+krum f={f}",
            "krum",
            {"num_byzantine": f},
            pre=(("nnm", {"num_byzantine": f}),),
            byzfl=lambda x: byzfl.krum(byzfl.nnm(x, f), f),
            byzfl_bytes=lambda n_, d_: byzfl.nnm_bytes(n_, d_, f, 4),
            same_definition=(),
        ),
        Bench(
            "bucketing(s=2)+median",
            "median",
            {},
            pre=(("bucketing", {"bucket_size": 2}),),
            byzfl=lambda x: byzfl.median(byzfl.bucketing(x, 2)),
            same_definition=(),
        ),
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


@dataclass
class Contender:
    """One implementation of a row: how to prepare its input (untimed) and what to time."""

    column: str
    prepare: Callable[[], Any]
    run: Callable[[Any], Array]
    skip: str = ""
    times: list[float] = field(default_factory=list)
    out: Array | None = None


def ours(bench: Bench, updates: Array, counts: Array) -> Contender:
    if bench.stage:
        stage = strategies.get_pre_aggregator(bench.name, bench.params)
        d = updates.shape[1]

        def run_stage(args: tuple[Array, Array]) -> Array:
            rng = np.random.default_rng(0)
            return cast(Array, stage.update(args[0], args[1], stage.init(d), rng=rng)[0])

        return Contender("ours", partial(tuple, (updates, counts)), run_stage)
    rule = strategies.build_chain(bench.name, bench.params, bench.pre)
    # FLTrust's server update (TF training on the root set, not aggregation work): the mean
    # update stands in for it, computed outside the timing.
    reference = updates.mean(axis=0) if rule.needs_reference() else None

    def run_rule(args: tuple[Array, Array]) -> Array:
        return rule(args[0], args[1], reference=reference)

    return Contender("ours", partial(tuple, (updates, counts)), run_rule)


def peers(bench: Bench, updates: Array, counts: Array, mem_cap: float) -> list[Contender]:
    results = [([row], int(count)) for row, count in zip(updates, counts, strict=True)]
    out = []
    if bench.legacy is not None:
        out.append(Contender("legacy", lambda: results, bench.legacy))
    if bench.helpers is not None:
        out.append(
            Contender("message-api helpers", partial(contents, updates, counts), bench.helpers)
        )
    if bench.message is not None:
        # replies are consumed (FedMedian pops arrays), so each run gets fresh ones, untimed
        msgs = partial(replies, updates, counts)
        out.append(Contender("message-api", msgs, partial(run_message, bench.message)))
    if bench.byzfl is not None:
        prepare = updates.copy if bench.byzfl_mutates else lambda: updates
        peer = Contender("byzfl", prepare, bench.byzfl)
        need = bench.byzfl_bytes(*updates.shape) if bench.byzfl_bytes else 0
        if need > mem_cap * MiB:
            peer.skip = f"skipped (allocates {need / MiB / 1024:.1f} GiB)"
        out.append(peer)
    return out


def time_in_turn(contenders: list[Contender], repeats: int) -> None:
    """Each round runs every contender once, in turn, starting one further along each round
    (no contender always runs first, after a gc or another's frees); long ones stop repeating
    after 5 s."""
    for round_ in range(repeats):
        shift = round_ % len(contenders)
        for c in contenders[shift:] + contenders[:shift]:
            if c.skip or (c.times and statistics.median(c.times) > 5.0):
                continue
            args = c.prepare()
            gc.collect()
            start = time.perf_counter()
            c.out = c.run(args)
            c.times.append(time.perf_counter() - start)


def peak_mib(c: Contender) -> float:
    """tracemalloc peak of one run beyond its prepared input (numpy reports its buffers)."""
    args = c.prepare()
    gc.collect()
    tracemalloc.start()
    try:
        c.run(args)
        return tracemalloc.get_traced_memory()[1] / MiB
    finally:
        tracemalloc.stop()


def agree(ours_out: Array, theirs: Array) -> str:
    if ours_out.shape != np.shape(theirs):
        return f"NO (shape {np.shape(theirs)})"
    ok = np.allclose(ours_out, theirs, rtol=1e-5, atol=1e-7)
    return "yes" if ok else f"NO (max|diff| {np.max(np.abs(ours_out - theirs)):.1e})"


def flower_cap_skip(
    rate: dict[tuple[str, str], float], key: tuple[str, str], size: float, cap: float
) -> str:
    if key in rate and rate[key] * size > cap:
        return f"skipped (> {cap:.0f} s: predicted {rate[key] * size:.0f} s)"
    return ""


def bench_row(
    bench: Bench,
    updates: Array,
    counts: Array,
    args: argparse.Namespace,
    rate: dict[tuple[str, str], float],
) -> str:
    n, d = updates.shape
    mine = ours(bench, updates, counts)
    others = peers(bench, updates, counts, args.mem_cap)
    for peer in others:
        if peer.column == "legacy":
            key = (peer.column, bench.label.split()[0] + str(bench.stage))
            peer.skip = peer.skip or flower_cap_skip(
                rate, key, float(n) ** bench.legacy_power * d, args.cap
            )
    time_in_turn([mine, *others], args.repeats)
    ours_s = statistics.median(mine.times)
    line = f"  {bench.label:30s} ours {ours_s:8.3f} s"
    ratios = []
    for peer in others:
        line += f" | {peer.column} "
        if peer.skip:
            line += peer.skip
            continue
        seconds = statistics.median(peer.times)
        if peer.column == "legacy":
            key = (peer.column, bench.label.split()[0] + str(bench.stage))
            rate[key] = seconds / (float(n) ** bench.legacy_power * d)
        ratios.append(seconds / ours_s)
        assert mine.out is not None and peer.out is not None
        verdict = agree(mine.out, peer.out) if peer.column in bench.same_definition else "n/a"
        line += f"{seconds:8.3f} s {seconds / ours_s:6.2f}x agree={verdict}"
    if ratios:
        line += f" || fastest peer {min(ratios):.2f}x"
    if bench.memory and args.memory:
        line += f" || peak MiB ours {peak_mib(mine):.1f}"
        line += "".join(f", {p.column} {peak_mib(p):.1f}" for p in others if not p.skip)
        line += f" (input {updates.nbytes / MiB:.1f})"
    return line


def rows(sizes: list[tuple[int, int]], args: argparse.Namespace) -> Iterator[str]:
    # (column, bench) -> seconds / (n**power * d) of the last run, to skip slow Flower cases
    rate: dict[tuple[str, str], float] = {}
    for n, d in sizes:
        rng = np.random.default_rng(n * 7919 + d)
        updates = rng.normal(0.0, 0.01, size=(n, d)).astype(np.float32)
        # equal counts: Flower's Multi-Krum and FedAvg weight by them, ByzFL ignores them
        counts = np.full(n, 100, dtype=np.int64)
        mine = Contender("stack", partial(replies, updates, counts), stack_replies)
        time_in_turn([mine], args.repeats)
        yield (
            f"n={n} d={d:.0e}: stack (Message replies -> (n, d) float32):"
            f" {statistics.median(mine.times):.3f} s"
        )
        wanted = [word for word in args.only.split(",") if word]
        for bench in benches(n):
            if not wanted or any(word in bench.label for word in wanted):
                yield bench_row(bench, updates, counts, args, rate)


def header(args: argparse.Namespace) -> list[str]:
    return [
        "fedshield aggregator benchmark (seconds, median of the rounds; Nx = peer time / our time)",
        f"python {platform.python_version()}, numpy {np.__version__}, flwr {flwr.__version__},"
        f" ByzFL 69bd1ac numpy path (benchmarks/byzfl_numpy.py), {os.cpu_count()} CPUs,"
        f" {platform.machine()}",
        f"updates float32 N(0, 0.01); f = max(1, n // 10); equal counts; {args.repeats} rounds,"
        f" contenders in turn, a contender stops repeating once its median passes 5 s;"
        f" Flower legacy skipped above {args.cap:.0f} s (predicted), ByzFL above"
        f" {args.mem_cap:.0f} MiB (allocated); one untimed warm-up pass at n=10 d=1e4",
        "message-api times include deserialising the replies (the 'stack' line is that cost"
        " for our path, not included in 'ours'); agree=n/a: another definition (see"
        " benchmarks/byzfl_numpy.py, docs/aggregators.md)",
        load_line("start"),
        "",
    ]


def load_line(when: str) -> str:
    """The 1/5/15-minute load averages: other jobs share the CPU, so say how busy it was."""
    one, five, fifteen = os.getloadavg()
    return f"load average at {when}: {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} CPUs"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"100x1e5,50x1e6"`` -> ``[(100, 100000), (50, 1000000)]``."""
    out = []
    for item in text.split(","):
        n, d = item.lower().split("x")
        out.append((int(n), int(float(d))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100x1e5,50x1e6", help="n x d pairs, comma-separated")
    parser.add_argument("--quick", action="store_true", help="sizes 10x1e4,20x1e5")
    parser.add_argument("--cap", type=float, default=60.0, help="skip Flower legacy above this")
    parser.add_argument("--mem-cap", type=float, default=2048.0, help="skip ByzFL above (MiB)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--only", default="", help="rows whose label contains one of these (a,b)")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    sizes = parse_sizes("10x1e4,20x1e5" if args.quick else args.sizes)
    lines = header(args)
    for line in lines:
        print(line, flush=True)
    # One untimed pass at a tiny size first: imports (sklearn for SignGuard), BLAS thread
    # start-up and first-call costs would otherwise land on the first timed case.
    warm = argparse.Namespace(**{**vars(args), "repeats": 1, "memory": False})
    for _ in rows([(10, 10**4)], warm):
        pass
    for line in rows(sizes, args):
        print(line, flush=True)
        lines.append(line)
    lines.append(load_line("end"))
    print(lines[-1])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

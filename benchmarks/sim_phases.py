"""Where one fedshield round's time goes: the quickstart round, phase by phase, in one process.

The real objects of a run (``FedshieldStrategy``, the ``ClientApp``'s ``train``, the
``Evaluator``, the ``RunLog``) driven by hand without Ray, so each phase can be timed alone:

* server send: ``configure_train`` (sampling, the scenario JSON, 10 messages);
* transport: pickling each message and each reply there and back (what Ray does to ship them);
* client decode / training / encode: ``ArrayRecord.to_numpy_ndarrays``, ``train_locally``,
  ``encode_train_reply`` inside ``clients.app.train``; client other: the rest of ``train``
  (scenario lookup, shard, seeds);
* server decode, gate, aggregation: ``aggregate_train``'s parts; evaluation; logging.

Round 1 pays the traces (the first call of each compiled function); round 2 is the steady
round, the one reported per phase. Clients run one after another here, while a run spreads
them over the actors (2 on this machine), so a run's steady round is about
``server + clients / 2 + evaluation + logging``.

    python benchmarks/sim_phases.py --out benchmarks/results/simulation_phases.txt
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict  # noqa: E402

import clients.app as client_app  # noqa: E402
from common.data.shards import dataset_of  # noqa: E402
from common.results import atomic_write_text  # noqa: E402
from scenarios.loader import load_scenario  # noqa: E402
from server.adversary import Adversary  # noqa: E402
from server.app import initial_weights  # noqa: E402
from server.evaluation import Evaluator  # noqa: E402
from server.round import RoundSink  # noqa: E402
from server.run_log import RunLog  # noqa: E402
from server.strategy import FedshieldStrategy  # noqa: E402
from strategies import build_chain  # noqa: E402

SPENT: dict[str, float] = defaultdict(float)
TOP = (
    "server send",
    "transport (pickle there and back)",
    "client total",
    "server aggregate_train",
    "evaluation",
    "logging",
)


def timed(phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[phase] += time.perf_counter() - start

    return wrapper


def instrument(strategy: FedshieldStrategy) -> None:
    """Wrap the phases' functions in timers (the round's own code paths, unchanged)."""
    client_app.train_locally = timed("client training", client_app.train_locally)
    client_app.P.encode_train_reply = timed("client encode", client_app.P.encode_train_reply)
    decode = ArrayRecord.to_numpy_ndarrays
    ArrayRecord.to_numpy_ndarrays = timed("array decode (client+server)", decode)  # type: ignore[method-assign]
    strategy._decode = timed("server decode", strategy._decode)  # type: ignore[method-assign]
    strategy._screen = timed("server gate", strategy._screen)  # type: ignore[method-assign]
    strategy._aggregate = timed("server aggregation", strategy._aggregate)  # type: ignore[method-assign]


def one_round(
    server_round: int, strategy: Any, weights: ArrayRecord, parts: dict[str, Any]
) -> ArrayRecord:
    start = time.perf_counter()
    messages = list(strategy.configure_train(server_round, weights, ConfigRecord(), None))
    SPENT["server send"] += time.perf_counter() - start
    replies = []
    for message in messages:
        message.metadata.__dict__["_message_id"] = f"m{server_round}-{message.metadata.dst_node_id}"
        start = time.perf_counter()
        received = pickle.loads(pickle.dumps(message))
        SPENT["transport (pickle there and back)"] += time.perf_counter() - start
        partition = parts["partition_of"][message.metadata.dst_node_id]
        context = Context(
            1, message.metadata.dst_node_id, {"partition-id": partition}, RecordDict(), {}
        )
        start = time.perf_counter()
        reply = client_app.train(received, context)
        SPENT["client total"] += time.perf_counter() - start
        start = time.perf_counter()
        reply = pickle.loads(pickle.dumps(reply))
        reply.metadata.__dict__["_src_node_id"] = message.metadata.dst_node_id
        SPENT["transport (pickle there and back)"] += time.perf_counter() - start
        replies.append(reply)
    start = time.perf_counter()
    new_global, _ = strategy.aggregate_train(server_round, replies)
    SPENT["server aggregate_train"] += time.perf_counter() - start
    start = time.perf_counter()
    evaluation = parts["evaluator"].evaluate(new_global.to_numpy_ndarrays())
    SPENT["evaluation"] += time.perf_counter() - start
    start = time.perf_counter()
    parts["log"].record(server_round, evaluation, strategy.sink.take(server_round), {})
    SPENT["logging"] += time.perf_counter() - start
    return new_global  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    scenario = load_scenario("quickstart", [])
    data = dataset_of(scenario)
    nodes = {p: 1000 + p for p in range(scenario.data.num_clients)}
    weights = initial_weights(scenario, data.input_shape, data.num_classes)
    chain = build_chain(scenario.defense.aggregator, scenario.defense.params, [])
    strategy = FedshieldStrategy(
        scenario=scenario,
        nodes=nodes,
        num_params=sum(w.size for w in weights),
        chain=chain,
        adversary=Adversary(scenario, malicious=frozenset()),
        guard=None,
        sink=RoundSink(),
    )
    instrument(strategy)
    with tempfile.TemporaryDirectory() as run_dir, open(os.devnull, "w") as quiet:
        parts = {
            "partition_of": {n: p for p, n in nodes.items()},
            "evaluator": Evaluator(model_name="mlp", dataset=data, success_set=None),
            "log": RunLog(Path(run_dir), scenario, frozenset(), stream=quiet),
        }
        lines = [
            f"# benchmarks/sim_phases.py  {time.strftime('%Y-%m-%d %H:%M:%S')}  load average "
            + " ".join(f"{x:.2f}" for x in os.getloadavg())
        ]
        record = ArrayRecord(weights)
        for server_round in (1, 2):
            SPENT.clear()
            record = one_round(server_round, strategy, record, parts)
            label = "first (traces)" if server_round == 1 else "steady"
            lines.append(f"round {server_round}, {label}: ms (10 clients one after another)")
            for phase in TOP:
                lines.append(f"  {phase:<36} {SPENT[phase] * 1000:8.1f}")
            for phase in sorted(set(SPENT) - set(TOP)):
                lines.append(f"    of which {phase:<27} {SPENT[phase] * 1000:8.1f}")
            lines.append(f"  {'sum':<36} {sum(SPENT[p] for p in TOP) * 1000:8.1f}")
    print("\n".join(lines))
    if args.out:
        atomic_write_text(args.out, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

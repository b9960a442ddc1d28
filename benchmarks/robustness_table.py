"""Clean, adversarial-only and mixed training, measured on the shipped robustness scenarios.

An in-process FedAvg federation built from the run's own parts, without Ray: the initial model
(``server.app.initial_weights``), each client's shard and local training
(``common.learning.training.train_locally`` with the seed ``clients/app.py`` derives), the
aggregation chain (``strategies.build_chain``, weighted FedAvg over the stacked deltas), the
server's probe (``server.robustness``) and distillation (``server.distillation``). Every client
of these scenarios is honest and replies, so the federation's arithmetic is the run's; what is
left out is only the transport (Flower messages on Ray). It exists because a Ray run needs the
machine's shared simulation lock, and measured tables should not wait on it; `fedshield run
robustness_mixed` gives the same quantities in ``metrics.jsonl`` and ``summary.json``.

    python benchmarks/robustness_table.py --out benchmarks/results/robustness.txt
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common.arrays import flatten, stack_deltas, unflatten
from common.data.shards import client_shard, dataset_of
from common.learning.training import compiled_model, train_locally
from common.schema import Scenario
from common.seeding import derive_seed
from scenarios.loader import load_scenario
from server.app import initial_weights
from server.distillation import distillation_report
from server.evaluation import Evaluator
from server.robustness import robustness_probe
from strategies import build_chain

SCENARIOS = ("robustness_clean", "robustness_adversarial", "robustness_mixed")


def federate(scenario: Scenario) -> dict[str, object]:
    """Run the scenario's rounds in process; the final figures and the per-round robust ones."""
    dataset = dataset_of(scenario)
    weights = initial_weights(scenario, dataset.input_shape, dataset.num_classes)
    chain = build_chain(scenario.defense.aggregator, scenario.defense.params)
    state = chain.init(sum(w.size for w in weights))
    evaluator = Evaluator(model_name=scenario.model.name, dataset=dataset, success_set=None)
    probe = robustness_probe(scenario, evaluator.model, dataset)
    assert probe is not None
    model = compiled_model(scenario, dataset.input_shape, dataset.num_classes, dp=False)
    history = []
    for server_round in range(1, scenario.rounds + 1):
        replies, sizes = [], []
        for partition in range(scenario.data.num_clients):
            x, y = client_shard(scenario, partition)
            seed = derive_seed(scenario.seed, "train", server_round, partition)
            outcome = train_locally(model, weights, x, y, scenario=scenario, seed=seed, dp=False)
            replies.append(outcome.weights)
            sizes.append(len(y))
        deltas = stack_deltas(replies, weights)
        step, state = chain.update(
            deltas, np.asarray(sizes, np.int64), state, rng=np.random.default_rng(0)
        )
        weights = unflatten(flatten(weights) + np.asarray(step, np.float32), weights)
        row = {"round": server_round, **evaluator.evaluate(weights)}
        row.update(probe.metrics(server_round, weights))
        history.append(row)
    distilled = distillation_report(scenario, dataset, weights, range(scenario.data.num_clients))
    return {"final": history[-1], "history": history, "distillation": distilled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    lines = [
        "scenario                 clean  fgsm   pgd    | student clean fgsm pgd  "
        "| MI adv teacher student"
    ]
    details = {}
    for name in SCENARIOS:
        started = time.perf_counter()
        result = federate(load_scenario(name))
        final, distilled = result["final"], result["distillation"]
        assert isinstance(final, dict) and isinstance(distilled, dict)
        t, s = distilled["teacher"], distilled["student"]
        lines.append(
            f"{name:<24} {final['accuracy']:.3f}  {final['robust_accuracy_fgsm']:.3f}  "
            f"{final['robust_accuracy_pgd']:.3f}  | {s['accuracy']:.3f} "
            f"{s['robust_accuracy_fgsm']:.3f} {s['robust_accuracy_pgd']:.3f} | "
            f"{t['membership_inference']['advantage']:.3f} "
            f"{s['membership_inference']['advantage']:.3f}  "
            f"(teacher held-out {t['accuracy']:.3f}; {time.perf_counter() - started:.0f} s)"
        )
        details[name] = result
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n\n" + json.dumps(details, indent=1, default=float) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()

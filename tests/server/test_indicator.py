"""BackdoorIndicator's server side: the planted task, its probe, and the planted broadcast
being what is digested, signed and aggregated against (no Ray)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord

from common import protocol as P
from common.arrays import flatten
from common.crypto.digest import digest_arrays
from common.crypto.keys import client_key
from common.data.shards import dataset_of
from scenarios.loader import load_scenario
from server.app import initial_weights
from server.evaluation import Evaluator
from server.guard import IntegrityGuard
from server.inspection import ModelInspector, model_inspector
from strategies import build_chain
from tests.server._round import GRID, client_reply, make_strategy, partition_of

PARAMS = "defense.params={num_samples=100, batch_size=10, learning_rate=0.01, epochs=60}"
SCENARIO = load_scenario("quickstart", ["defense.aggregator=indicator", PARAMS])
DATASET = dataset_of(SCENARIO)
WEIGHTS = initial_weights(SCENARIO, DATASET.input_shape, DATASET.num_classes)
D = sum(w.size for w in WEIGHTS)
CHAIN = build_chain(SCENARIO.defense.aggregator, SCENARIO.defense.params)


def _inspector() -> ModelInspector:
    inspector = model_inspector(CHAIN, SCENARIO, DATASET, WEIGHTS)
    assert inspector is not None and inspector.indicator is not None
    return inspector


INSPECTOR = _inspector()
PLANTED = INSPECTOR.broadcast(ArrayRecord(WEIGHTS)).to_numpy_ndarrays()


def _mlp_accuracies(weights: list[np.ndarray]) -> np.ndarray:
    """Per-label accuracy on the indicator set by the MLP's own formula, in numpy."""
    planter = INSPECTOR.indicator
    assert planter is not None
    hidden = np.maximum(planter.x.reshape(len(planter.x), -1) @ weights[0] + weights[1], 0.0)
    predicted = (hidden @ weights[2] + weights[3]).argmax(axis=1)
    return np.array([np.mean(predicted[planter.y == k] == k) for k in range(10)])


def test_the_indicator_set_is_balanced_and_the_task_is_planted_near_the_global_model() -> None:
    planter = INSPECTOR.indicator
    assert planter is not None
    np.testing.assert_array_equal(np.bincount(planter.y), [10] * 10)  # 100 // 10 batches of 10
    assert planter.x.shape == (100, 8, 8, 1) and 0.0 <= planter.x.min() <= planter.x.max() <= 1.0
    before, after = _mlp_accuracies(WEIGHTS), _mlp_accuracies(PLANTED)
    assert before.max() <= 0.5  # random labels: the initial model solves no label
    assert after.min() >= 0.9  # planted: every label's indicator is learnt
    # the same seed plants the same task
    again = _inspector().broadcast(ArrayRecord(WEIGHTS)).to_numpy_ndarrays()
    np.testing.assert_allclose(flatten(again), flatten(PLANTED), rtol=0, atol=1e-6)


def test_mu_pulls_the_planted_model_towards_the_global_one() -> None:
    def distance(mu: float) -> float:
        params = f"defense.params={{num_samples=100, batch_size=10, epochs=5, mu={mu}}}"
        scenario = load_scenario("quickstart", ["defense.aggregator=indicator", params])
        chain = build_chain(scenario.defense.aggregator, scenario.defense.params)
        inspector = model_inspector(chain, scenario, DATASET, WEIGHTS)
        assert inspector is not None
        planted = inspector.broadcast(ArrayRecord(WEIGHTS)).to_numpy_ndarrays()
        return float(np.linalg.norm(flatten(planted) - flatten(WEIGHTS)))

    free, pulled = distance(0.0), distance(50.0)
    # each step moves w by lr (g_CE + mu/2 (w - w_g) / ||w - w_g||): the pull is a constant
    # 0.125 per step against the cross-entropy's, so 50 steps end much nearer w_g
    assert 0.0 < pulled < 0.5 * free


def test_the_probe_is_the_per_label_accuracy_of_each_returned_model() -> None:
    inspection = INSPECTOR.inspection(PLANTED)
    assert inspection.indicator is not None and inspection.ddifs is None
    washed = flatten(WEIGHTS) - flatten(PLANTED)  # back to the unplanted model
    rows = np.stack([np.zeros(D, np.float32), washed])
    np.testing.assert_allclose(
        inspection.indicator(rows),
        np.stack([_mlp_accuracies(PLANTED), _mlp_accuracies(WEIGHTS)]),
        rtol=0,
        atol=1e-12,
    )
    assert model_inspector(build_chain("lasa", {}), SCENARIO, DATASET, WEIGHTS) is not None
    assert model_inspector(build_chain("median", {}), SCENARIO, DATASET, WEIGHTS) is None


def test_the_planted_model_is_sent_digested_and_aggregated_against(tmp_path: Path) -> None:
    # The server's adversary here is a client that keeps the indicator (it sends the planted
    # model back unchanged, as a backdoor that reinforces one label's OOD mapping would); the
    # honest clients wash it out (they send back the unplanted model). Integrity is on: each
    # client reports the digest of the model it received, which must be the planted one.
    overrides = ["defense.aggregator=indicator", PARAMS, "integrity.enabled=true"]
    scenario = load_scenario("quickstart", overrides)
    evaluator = cast(Evaluator, SimpleNamespace(model=None, dataset=None))  # no watermark
    guard = IntegrityGuard(scenario, tmp_path, malicious=frozenset(), evaluator=evaluator)
    guard.start(WEIGHTS, shard_sizes=dict.fromkeys(range(10), 10))
    strategy = make_strategy(scenario, CHAIN, num_params=D, guard=guard, inspector=_inspector())
    sent = list(strategy.configure_train(1, ArrayRecord(WEIGHTS), ConfigRecord(), GRID))
    for message in sent:
        arrays = message.content.array_records[P.ARRAYS].to_numpy_ndarrays()
        np.testing.assert_allclose(flatten(arrays), flatten(PLANTED), rtol=0, atol=1e-6)
        digest = message.content.config_records[P.CONFIG][P.GLOBAL_DIGEST]
        assert digest == digest_arrays(arrays) != digest_arrays(WEIGHTS)

    def reply_of(partition: int) -> list[np.ndarray]:
        return PLANTED if partition < 3 else WEIGHTS

    key = lambda p: client_key(scenario.integrity, run_seed=scenario.seed, partition_id=p)  # noqa: E731
    replies = [client_reply(m, reply_of(partition_of(m)), key=key(partition_of(m))) for m in sent]
    arrays, _ = strategy.aggregate_train(1, replies)
    result = strategy.sink.take(1)
    assert arrays is not None and result is not None
    assert not result.rejected and result.skipped is None  # base digests match the broadcast
    # the three that kept the task are left out: the mean step is washed - planted
    np.testing.assert_allclose(
        flatten(arrays.to_numpy_ndarrays()), flatten(WEIGHTS), rtol=0, atol=1e-5
    )

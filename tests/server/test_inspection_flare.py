"""The server's side of FLARE: the penultimate-layer representations of the root examples, and
a round in which three colluding poisoners lose weight by hand-counted votes."""

from __future__ import annotations

import math

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord

from common.arrays import flatten, unflatten
from common.data.shards import dataset_of, root_indices
from scenarios.loader import load_scenario
from server.app import initial_weights
from server.inspection import model_inspector
from strategies import build_chain
from tests.server._round import GRID, client_reply, make_strategy, partition_of

BASE = load_scenario("quickstart")
SCENARIO = BASE.model_copy(
    update={"defense": BASE.defense.model_copy(update={"aggregator": "flare", "root_size": 300})}
)
DATASET = dataset_of(SCENARIO)
WEIGHTS = initial_weights(SCENARIO, DATASET.input_shape, DATASET.num_classes)
D = sum(w.size for w in WEIGHTS)


def test_features_are_the_hidden_activations_of_the_root_examples_of_the_class() -> None:
    chain = build_chain("flare", {})
    inspector = model_inspector(chain, SCENARIO, DATASET, WEIGHTS)
    assert inspector is not None and inspector.auxiliary is not None
    probe = inspector.inspection(WEIGHTS).features
    assert probe is not None and inspector.inspection(WEIGHTS).ddifs is None
    rows = np.random.default_rng(0).normal(0.0, 0.05, (2, D)).astype(np.float32)
    indices = root_indices(SCENARIO, DATASET)
    x, y = DATASET.x_train[indices], DATASET.y_train[indices]
    for aux_class, chosen in ((1, y == 1), (None, np.ones(len(y), dtype=bool))):
        features = probe(rows, aux_class)
        assert features.shape == (2, int(chosen.sum()), 64)  # the MLP's Dense(64, ReLU)
        for row, got in zip(rows, features, strict=True):
            kernel, bias = unflatten(flatten(WEIGHTS) + row, WEIGHTS)[:2]
            hidden = np.maximum(x[chosen].reshape(int(chosen.sum()), -1) @ kernel + bias, 0.0)
            np.testing.assert_allclose(got, hidden, rtol=1e-4, atol=1e-5)


def test_three_colluding_poisoners_lose_weight_by_the_counted_votes() -> None:
    # Partitions 0-6 send one small delta h, 7-9 h plus a large first-layer change p (their
    # models represent the root examples differently). MMD: 0 among copies (clamped), one value
    # between the groups. Each client votes for floor(10/2) - 1 = 4 others: an honest voter's
    # 6 honest copies tie at 0 (4/6 each); a poisoner votes for the 2 other poisoners and
    # shares 2 among the 7 honest tied (2/7 each). Counts: honest 6 x 4/6 + 3 x 2/7 = 34/7,
    # poisoner 2; mean 4; weights exp(34/28) and exp(2/4), normalised.
    chain = build_chain("flare", {"aux_class": None})
    inspector = model_inspector(chain, SCENARIO, DATASET, WEIGHTS)
    strategy = make_strategy(SCENARIO, chain, num_params=D, inspector=inspector)
    rng = np.random.default_rng(1)
    honest = rng.normal(0.0, 0.01, D).astype(np.float32)
    poisoned = honest.copy()
    poisoned[: WEIGHTS[0].size] += rng.normal(0.0, 0.5, WEIGHTS[0].size).astype(np.float32)
    base = flatten(WEIGHTS)
    sent = list(strategy.configure_train(1, ArrayRecord(WEIGHTS), ConfigRecord(), GRID))
    replies = [
        client_reply(m, unflatten(base + (honest if partition_of(m) < 7 else poisoned), WEIGHTS))
        for m in sent
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    result = strategy.sink.take(1)
    assert arrays is not None and result is not None and result.skipped is None
    high, low = math.exp(34 / 28), math.exp(0.5)
    total = 7 * high + 3 * low
    expected = (7 * high * honest + 3 * low * poisoned) / total
    step = flatten(arrays.to_numpy_ndarrays()) - base
    np.testing.assert_allclose(step, expected, rtol=1e-4, atol=1e-6)
    assert 3 * low / total < 0.18  # FedAvg would give the poisoners 0.3

"""FLTrust's server side: the seeded root dataset, its update g0, and the strategy passing it on."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from flwr.app import ArrayRecord, ConfigRecord

from common.arrays import flatten, unflatten
from common.data.shards import dataset_of, root_indices
from common.errors import ConfigError
from common.learning.models import build_model
from scenarios.loader import load_scenario
from server.app import initial_weights
from server.root_reference import RootReference
from strategies import build_chain
from tests.server._round import GRID, client_reply, make_strategy

FLTRUST = ['defense.aggregator="fltrust"', "defense.root_size=60"]
SCENARIO = load_scenario("quickstart", FLTRUST)
DATASET = dataset_of(SCENARIO)
WEIGHTS = initial_weights(SCENARIO, DATASET.input_shape, DATASET.num_classes)


def _root_loss(root: RootReference, weights: list[np.ndarray]) -> float:
    model = build_model(SCENARIO.model.name, DATASET.input_shape, DATASET.num_classes)
    model.set_weights(weights)
    loss = tf.keras.losses.SparseCategoricalCrossentropy()(root.y, model(root.x, training=False))
    return float(loss)


def test_root_set_is_drawn_once_with_the_seed_from_the_training_split() -> None:
    first, second = RootReference(SCENARIO, DATASET), RootReference(SCENARIO, DATASET)
    np.testing.assert_array_equal(first.indices, second.indices)
    assert len(np.unique(first.indices)) == 60
    assert first.indices.max() < len(DATASET.y_train)
    np.testing.assert_array_equal(first.x, DATASET.x_train[first.indices])
    np.testing.assert_array_equal(first.y, DATASET.y_train[first.indices])
    other_seed = load_scenario("quickstart", [*FLTRUST, "seed=7"])
    assert not np.array_equal(RootReference(other_seed, DATASET).indices, first.indices)


def test_reference_update_is_reproducible_and_descends_the_root_loss() -> None:
    root = RootReference(SCENARIO, DATASET)
    g0 = root.update(1, WEIGHTS)
    assert g0.shape == (sum(w.size for w in WEIGHTS),) and g0.dtype == np.float32
    np.testing.assert_array_equal(root.update(1, WEIGHTS), g0)
    assert not np.array_equal(root.update(2, WEIGHTS), g0)  # another round, another batch order
    trained = unflatten(flatten(WEIGHTS) + g0, WEIGHTS)
    # 4 SGD steps on 60 examples: measured 2.43 -> 1.95
    assert _root_loss(root, trained) < 0.9 * _root_loss(root, WEIGHTS)


def test_a_root_set_larger_than_the_training_split_is_refused_before_any_run() -> None:
    message = r"^defense.root_size: got 5000; the digits training split has only 1437 examples$"
    with pytest.raises(ConfigError, match=message):
        load_scenario("quickstart", ['defense.aggregator="fltrust"', "defense.root_size=5000"])
    # the draw itself refuses it too, for a Scenario built without the validator
    defense = SCENARIO.defense.model_copy(update={"root_size": 5000})
    with pytest.raises(ConfigError, match=message):
        root_indices(SCENARIO.model_copy(update={"defense": defense}), DATASET)


def test_the_strategy_scores_replies_against_this_rounds_root_update() -> None:
    chain = build_chain("fltrust", {})
    root = RootReference(SCENARIO, DATASET)
    strategy = make_strategy(SCENARIO, chain, num_params=sum(w.size for w in WEIGHTS), root=root)
    sent = list(strategy.configure_train(1, ArrayRecord(WEIGHTS), ConfigRecord(), GRID))
    g0 = RootReference(SCENARIO, DATASET).update(1, WEIGHTS)
    base = flatten(WEIGHTS)
    aligned = unflatten(base + 3.0 * g0, WEIGHTS)  # g0's direction, three times its norm
    flipped = unflatten(base - 10.0 * g0, WEIGHTS)  # the opposite direction: trust 0
    replies = [
        client_reply(sent[0], flipped, num_examples=100),
        client_reply(sent[1], aligned, num_examples=100),
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    result = strategy.sink.take(1)
    assert arrays is not None and result is not None and result.skipped is None
    step = flatten(arrays.to_numpy_ndarrays()) - base
    # the aligned update rescaled to ||g0||, the flipped one ignored: the step is g0 itself
    np.testing.assert_allclose(step, g0, rtol=1e-4, atol=1e-6)

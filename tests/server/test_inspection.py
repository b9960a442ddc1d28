"""The server's side of LASA and DeepSight: the model's layout and the DDifs of local models."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord

from common.arrays import flatten, unflatten
from common.data.shards import dataset_of
from scenarios.loader import load_scenario
from server.app import initial_weights
from server.inspection import ModelInspector, model_inspector
from strategies import build_chain
from tests.server._round import GRID, client_reply, make_strategy, partition_of

SCENARIO = load_scenario("quickstart")
DATASET = dataset_of(SCENARIO)
WEIGHTS = initial_weights(SCENARIO, DATASET.input_shape, DATASET.num_classes)
D = sum(w.size for w in WEIGHTS)


def test_the_layout_is_the_global_models_tensors_and_only_rules_that_read_it_get_one() -> None:
    inspector = ModelInspector(SCENARIO, DATASET, WEIGHTS, ddifs=False)
    layout = inspector.layout
    assert layout.shapes == tuple(w.shape for w in WEIGHTS) and layout.num_params == D
    assert layout.names == ("1:Dense/kernel", "1:Dense/bias", "2:Dense/kernel", "2:Dense/bias")
    kernel, bias, classes = layout.output_layer()
    assert classes == 10 and bias.stop == D and kernel.stop == bias.start
    assert inspector.inspection(WEIGHTS).ddifs is None  # LASA: no model is run
    assert model_inspector(build_chain("median", {}), SCENARIO, DATASET, WEIGHTS) is None
    deepsight = model_inspector(build_chain("deepsight", {}), SCENARIO, DATASET, WEIGHTS)
    assert deepsight is not None and deepsight.model is not None


def test_ddifs_are_one_for_an_unchanged_model_and_follow_an_output_bias() -> None:
    inspector = ModelInspector(SCENARIO, DATASET, WEIGHTS, ddifs=True)
    probe = inspector.inspection(WEIGHTS).ddifs
    assert probe is not None
    _, bias, _ = inspector.layout.output_layer()
    shifted = np.zeros(D, dtype=np.float32)
    shifted[bias] = 2.0  # every logit + 2: softmax, hence the model, unchanged
    boosted = np.zeros(D, dtype=np.float32)
    boosted[bias.start] = 1.0  # class 0's logit + 1
    ddifs = probe(np.stack([np.zeros(D, np.float32), shifted, boosted]), 2, 500, 1e-6)
    assert ddifs.shape == (2, 3, 10)
    # p / (p + 1e-6) with p >= ~1e-3 on these inputs: 1 within 1e-3
    np.testing.assert_allclose(ddifs[:, :2], 1.0, atol=1e-3)
    # p0' / p0 = e / (1 + (e - 1) p0) lies in (1, e); every other class falls by 1 / (...)
    assert np.all((ddifs[:, 2, 0] > 1.0) & (ddifs[:, 2, 0] < np.e))
    assert np.all(ddifs[:, 2, 1:] < 1.0)
    np.testing.assert_array_equal(inspector.noise(0, 500), inspector.noise(0, 500))
    assert not np.array_equal(inspector.noise(0, 500), inspector.noise(1, 500))
    assert inspector.noise(0, 500).min() >= 0.0 and inspector.noise(0, 500).max() < 1.0


def test_the_strategy_hands_the_rule_the_models_layout() -> None:
    chain = build_chain("lasa", {"sparsity": 0.0})
    delta = np.random.default_rng(0).normal(0.0, 0.01, D).astype(np.float32)
    sent_weights = unflatten(flatten(WEIGHTS) + delta, WEIGHTS)
    for inspector in (ModelInspector(SCENARIO, DATASET, WEIGHTS, ddifs=False), None):
        strategy = make_strategy(SCENARIO, chain, num_params=D, inspector=inspector)
        sent = list(strategy.configure_train(1, ArrayRecord(WEIGHTS), ConfigRecord(), GRID))
        arrays, _ = strategy.aggregate_train(1, [client_reply(m, sent_weights) for m in sent])
        result = strategy.sink.take(1)
        assert arrays is not None and result is not None
        if inspector is None:  # without it the rule refuses, and the round is skipped
            assert result.skipped is not None and "lasa: needs inspection=" in result.skipped
            continue
        # identical updates: every tensor's norms tie (sigma 0), all are kept, the mean is delta
        assert result.skipped is None
        step = flatten(arrays.to_numpy_ndarrays()) - flatten(WEIGHTS)
        np.testing.assert_allclose(step, delta, rtol=1e-4, atol=1e-7)


def test_deepsight_runs_on_the_servers_model_and_drops_a_bias_boosting_cluster() -> None:
    # Partitions 0-4 send one small random delta h (every output neuron's energy alike: TE
    # about 10); 5-9 send +5 on class 0's output bias only (NEUP (1, 0, ..): TE 1, suspicious
    # under the boundary median / 2). Each view sees two groups of 5 copies: two clusters, the
    # boosting one all suspicious. The median norm (||h|| + 5) / 2 leaves h unclipped: step h.
    chain = build_chain("deepsight", {"num_samples": 2000})
    inspector = model_inspector(chain, SCENARIO, DATASET, WEIGHTS)
    strategy = make_strategy(SCENARIO, chain, num_params=D, inspector=inspector)
    honest = np.random.default_rng(1).normal(0.0, 0.01, D).astype(np.float32)
    boost = np.zeros(D, dtype=np.float32)
    boost[D - 10] = 5.0
    base = flatten(WEIGHTS)
    sent = list(strategy.configure_train(1, ArrayRecord(WEIGHTS), ConfigRecord(), GRID))
    replies = [
        client_reply(m, unflatten(base + (honest if partition_of(m) < 5 else boost), WEIGHTS))
        for m in sent
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    result = strategy.sink.take(1)
    assert arrays is not None and result is not None and result.skipped is None
    step = flatten(arrays.to_numpy_ndarrays()) - base
    np.testing.assert_allclose(step, honest, rtol=1e-4, atol=1e-6)

"""Server optimisers after the rule: Flower 1.23's FedAvgM/FedAdagrad/FedAdam/FedYogi maths on
real reply Messages, composition with robust rules, state, checkpoints and scenario errors."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import numpy as np
import pytest
from flwr.common import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.common.logger import FLOWER_LOGGER
from flwr.serverapp import strategy as message_api
from numpy.typing import NDArray

import strategies
from common.errors import AggregationError, ConfigError
from scenarios.loader import validate_document

FLOWER_LOGGER.setLevel(logging.WARNING)

Vec = NDArray[np.float64]
MINIMAL = {"name": "t", "seed": 1, "rounds": 2}


def replies(weights: Vec, counts: NDArray[np.int64]) -> list[Message]:
    """Real train replies carrying each client's full weights (global + its update)."""
    out = []
    for node, (row, count) in enumerate(zip(weights, counts, strict=True), start=1):
        ins = Message(
            RecordDict({"arrays": ArrayRecord([np.zeros_like(row)])}),
            dst_node_id=node,
            message_type="train",
        )
        content = RecordDict(
            {
                "arrays": ArrayRecord([row.copy()]),
                "metrics": MetricRecord({"num-examples": int(count)}),
            }
        )
        out.append(Message(content, reply_to=ins))
    return out


FLOWER: dict[str, tuple[type[Any], dict[str, float]]] = {
    "fedavgm": (message_api.FedAvgM, {"server_learning_rate": 0.7, "server_momentum": 0.9}),
    "fedadagrad": (message_api.FedAdagrad, {"eta": 0.3, "tau": 0.01}),
    "fedadam": (message_api.FedAdam, {"eta": 0.1, "beta_1": 0.8, "beta_2": 0.95, "tau": 1e-3}),
    "fedyogi": (message_api.FedYogi, {"eta": 0.05, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3}),
}


def test_every_registered_optimiser_is_checked_against_flower() -> None:
    assert set(FLOWER) == set(strategies.SERVER_OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(FLOWER))
def test_matches_flower_strategy_over_four_rounds(name: str) -> None:
    cls, params = FLOWER[name]
    theirs = cls(**params)
    chain = strategies.build_chain("fedavg", {}, post=[(name, params)])
    rng = np.random.default_rng(0)
    d, n = 6, 5
    global_ours = global_theirs = rng.normal(size=d)
    state = chain.init(d)
    # Flower's FedOpt keeps the arrays it sent (configure_train); FedAvgM sets them once.
    if name == "fedavgm":
        theirs.current_arrays = ArrayRecord([global_theirs.copy()])
    for server_round in range(1, 5):
        updates = rng.normal(size=(n, d)) * 0.1 + rng.normal(size=d) * 0.05
        counts = rng.integers(1, 50, size=n).astype(np.int64)
        if name != "fedavgm":
            theirs.current_arrays = {
                k: a.numpy() for k, a in ArrayRecord([global_theirs.copy()]).items()
            }
        arrays, _ = theirs.aggregate_train(server_round, replies(global_theirs + updates, counts))
        assert arrays is not None
        global_theirs = arrays.to_numpy_ndarrays()[0]
        step, state = chain.update(updates, counts, state, rng=np.random.default_rng(0))
        global_ours = global_ours + step
        np.testing.assert_allclose(global_ours, global_theirs, rtol=1e-10, atol=1e-12)


def test_adam_by_hand_over_two_rounds() -> None:
    # Delta_1 = 2, Delta_2 = -1; b1 = b2 = 0.5, eta = 1, tau = 0 + 1e-9 (effectively 0).
    params = {"eta": 1.0, "beta_1": 0.5, "beta_2": 0.5, "tau": 1e-9}
    opt = strategies.get_server_optimizer("fedadam", params)
    step, state = opt.update(np.array([2.0]), opt.init(1))
    # m1 = 1, v1 = 2, eta_1 = sqrt(1 - 0.5^2) / (1 - 0.5^2) = 1.1547...
    np.testing.assert_allclose(step, [np.sqrt(0.75) / 0.75 / np.sqrt(2)], rtol=1e-8)
    step, state = opt.update(np.array([-1.0]), state)
    # m2 = 0.5 - 0.5 = 0: the second step is zero whatever v2 is.
    np.testing.assert_allclose(step, [0.0], atol=1e-12)
    assert state.rounds == 2
    np.testing.assert_allclose(state.second, [0.5 * 2 + 0.5 * 1])


def test_every_rule_composes_with_an_optimiser() -> None:
    # The optimiser sees exactly the rule's aggregate: krum + fedadagrad's step is FedAdagrad's
    # step on Krum's choice, beta_1 = 0: eta * Delta / (|Delta| + tau).
    x = np.array([[1.0, 1.0], [1.1, 0.9], [0.9, 1.1], [1.0, 1.05], [50.0, -50.0]])
    chain = strategies.build_chain(
        "krum", {"num_byzantine": 1}, post=[("fedadagrad", {"eta": 0.5, "tau": 0.01})]
    )
    krum = strategies.get_aggregator("krum", num_byzantine=1)(x, np.ones(5, dtype=np.int64))
    out = chain(x, np.ones(5, dtype=np.int64))
    np.testing.assert_allclose(out, 0.5 * krum / (np.abs(krum) + 0.01), rtol=1e-12)
    assert chain.name == "krum+fedadagrad"
    assert chain.min_clients() == 5  # the optimiser adds no bound


def test_state_is_frozen_and_checkpoints_replay_bit_for_bit() -> None:
    chain = strategies.build_chain(
        "trimmed_mean",
        {"num_trimmed": 1},
        pre=[("clip", {"max_norm": 1.0})],
        post=[("fedyogi", {})],
    )
    rng = np.random.default_rng(4)
    rounds = [(rng.normal(size=(7, 5)), np.ones(7, dtype=np.int64)) for _ in range(5)]
    state = chain.init(5)
    straight = []
    for i, (x, c) in enumerate(rounds):
        out, state = chain.update(x, c, state, rng=np.random.default_rng(i))
        straight.append(out)
        if i == 2:
            saved = pickle.dumps(state)
    assert len(state) == 3 and state[-1].rounds == 5
    assert not state[-1].first.flags.writeable and not state[-1].second.flags.writeable
    resumed = pickle.loads(saved)
    for i, (x, c) in enumerate(rounds[3:], start=3):
        out, resumed = chain.update(x, c, resumed, rng=np.random.default_rng(i))
        np.testing.assert_array_equal(out, straight[i])


def test_float32_aggregate_gives_a_float32_step() -> None:
    chain = strategies.build_chain("median", {}, post=[("fedadam", {})])
    out = chain(np.ones((3, 4), dtype=np.float32), np.ones(3, dtype=np.int64))
    assert out.dtype == np.float32


def test_wrong_state_length_is_one_line() -> None:
    chain = strategies.build_chain("fedavg", {}, post=[("fedavgm", {})])
    with pytest.raises(AggregationError, match="tuple of 2 stage states"):
        chain.update(np.ones((2, 1)), np.ones(2, dtype=np.int64), (), rng=np.random.default_rng())


def test_scenario_section_errors_name_the_field() -> None:
    validate_document({**MINIMAL, "server_optimizer": {"name": "fedadam", "params": {"eta": 0.01}}})
    with pytest.raises(ConfigError, match=r"^server_optimizer\.name: unknown server optimizer"):
        validate_document({**MINIMAL, "server_optimizer": {"name": "adam"}})
    with pytest.raises(ConfigError, match=r"^server_optimizer\.params\.beta_1: got 1\.0"):
        validate_document(
            {**MINIMAL, "server_optimizer": {"name": "fedyogi", "params": {"beta_1": 1.0}}}
        )
    with pytest.raises(ConfigError, match=r"^dp\.mode: got 'central' with server_optimizer"):
        validate_document(
            {
                **MINIMAL,
                "defense": {"aggregator": "fedavg", "params": {"weighted": False}},
                "server_optimizer": {"name": "fedavgm"},
                "dp": {"enabled": True, "mode": "central"},
            }
        )

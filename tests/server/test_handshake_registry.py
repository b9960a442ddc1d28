"""The simulation handshake reads Flower's own node registry: no message before round 1.

The grid is Flower's real ``InMemoryGrid`` on a real in-memory link state, and the nodes are
registered by the simulation engine's own function (``vce_api._register_nodes``), whose
``node id -> partition id`` map is the ``partition-id`` every virtual client is given.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.server.grid import InMemoryGrid
from flwr.server.superlink.fleet.vce.vce_api import _register_nodes
from flwr.server.superlink.linkstate import LinkStateFactory
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME

from common import protocol as P
from common.errors import FedshieldError
from common.schema import Scenario
from scenarios.loader import load_scenario
from server.adversary import Adversary
from server.decoding import decode_replies
from server.handshake import discover_partitions, registry_partitions
from server.round import RoundSink
from server.stopping import StoppableGrid, StopRequest
from server.strategy import FedshieldStrategy
from strategies import build_chain
from tests.server._round import GRID

NUM_CLIENTS = 1_000
SAMPLED = 100


class CountingGrid(InMemoryGrid):
    """Flower's in-memory grid, counting the messages the server pushes through it."""

    pushed = 0

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        messages = list(messages)
        self.pushed += len(messages)
        return super().push_messages(messages)


def _engine(num_nodes: int) -> tuple[CountingGrid, dict[int, int]]:
    """A grid on a link state where the engine registered ``num_nodes`` virtual nodes."""
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME)
    state = factory.state()
    run_id = state.create_run(None, None, None, {}, ConfigRecord(), None)
    engine_map = _register_nodes(num_nodes=num_nodes, state_factory=factory)
    grid = CountingGrid(state_factory=factory)
    grid.set_run(run_id)
    return grid, engine_map


def _scenario() -> Scenario:
    return load_scenario(
        "quickstart", [f"data.num_clients={NUM_CLIENTS}", f"clients_per_round={SAMPLED}"]
    )


def test_partitions_are_the_engines_own_and_no_message_is_sent() -> None:
    grid, engine_map = _engine(NUM_CLIENTS)
    scenario = _scenario()
    nodes, sizes = discover_partitions(StoppableGrid(grid, StopRequest()), scenario, timeout=1.0)
    assert grid.pushed == 0
    assert nodes == {partition: node for node, partition in engine_map.items()}
    # digits' 1,437 training examples dealt IID over 1,000 clients: 437 hold 2, 563 hold 1.
    assert sorted(sizes) == list(range(NUM_CLIENTS))
    assert sum(sizes.values()) == 1_437 and set(sizes.values()) == {1, 2}


def _first_round(
    scenario: Scenario, nodes: dict[int, int]
) -> tuple[FedshieldStrategy, list[Message]]:
    """The strategy on the handshake's map, and the messages it sends in round 1."""
    strategy = FedshieldStrategy(
        scenario=scenario,
        nodes=nodes,
        num_params=3,
        chain=build_chain(scenario.defense.aggregator, scenario.defense.params),
        adversary=Adversary(scenario, malicious=frozenset()),
        guard=None,
        sink=RoundSink(),
    )
    weights = ArrayRecord([np.zeros(3, np.float32)])
    return strategy, list(strategy.configure_train(1, weights, ConfigRecord(), GRID))


def test_round_one_contacts_only_the_sampled_nodes_and_samples_as_before() -> None:
    grid, _ = _engine(NUM_CLIENTS)
    scenario = _scenario()
    nodes, _ = discover_partitions(grid, scenario, timeout=1.0)
    _, sent = _first_round(scenario, nodes)
    assert len(sent) == SAMPLED and grid.pushed == 0
    # The partitions the seed drew before this change (seed 42, round 1), pinned.
    sampled = sorted(
        p for p, node in nodes.items() if node in {m.metadata.dst_node_id for m in sent}
    )
    assert sampled[:8] == [2, 6, 25, 30, 40, 46, 49, 73] and len(sampled) == SAMPLED


def test_a_node_claiming_another_partition_is_rejected() -> None:
    """A poisoner on partition ``p`` answers as partition ``q`` (to borrow its standing)."""
    grid, _ = _engine(NUM_CLIENTS)
    scenario = _scenario()
    nodes, _ = discover_partitions(grid, scenario, timeout=1.0)
    _, sent = _first_round(scenario, nodes)
    message = sent[0]
    partition_of = {node: partition for partition, node in nodes.items()}
    own = partition_of[int(message.metadata.dst_node_id)]
    claimed = next(p for p in range(NUM_CLIENTS) if p != own)
    content = P.encode_train_reply(
        [np.ones(3, np.float32)],
        partition_id=claimed,
        server_round=1,
        num_examples=1,
        train_loss=0.1,
        local_steps=1,
        sampling_rate=1.0,
        key=None,
        node_id=int(message.metadata.dst_node_id),
        base_digest="",
    )
    reply = Message(content=content, reply_to=message)
    decoded = decode_replies([reply], partition_of, [np.zeros(3, np.float32)])
    assert decoded.replies == []
    assert decoded.rejected == {
        own: (f"malformed: claims partition {claimed}, sent by partition {own}",)
    }


def test_a_registry_of_the_wrong_size_is_a_one_line_error() -> None:
    with pytest.raises(FedshieldError, match="registered 999 nodes, expected 1000"):
        registry_partitions(list(range(999)), _scenario())

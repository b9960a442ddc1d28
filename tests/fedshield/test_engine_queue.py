"""The engine's extractor asks only nodes with a waiting message, and delivers as Flower's does.

Flower's real in-memory link state, nodes registered by the engine's own function, messages
pushed through Flower's real ``InMemoryGrid``.
"""

from __future__ import annotations

import threading
from queue import Queue

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.server.grid import InMemoryGrid
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.linkstate import InMemoryLinkState, LinkStateFactory
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME

from fedshield.engine_queue import add_pending_messages_to_queue, install, sweep

NUM_NODES = 2_000


class _CountingState(InMemoryLinkState):
    """Flower's in-memory link state, counting the per-node asks for a message."""

    asks = 0

    def get_message_ins(self, node_id: int, limit: int | None) -> list[Message]:
        self.asks += 1
        return super().get_message_ins(node_id, limit)


def _engine() -> tuple[_CountingState, InMemoryGrid, dict[int, int]]:
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME)
    factory.state_instance = state = _CountingState()
    run_id = state.create_run(None, None, None, {}, ConfigRecord(), None)
    nodes = vce_api._register_nodes(num_nodes=NUM_NODES, state_factory=factory)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run_id)
    return state, grid, nodes


def _push(grid: InMemoryGrid, destinations: list[int]) -> None:
    grid.push_messages(
        [
            Message(content=RecordDict(), message_type=MessageType.QUERY, dst_node_id=node)
            for node in destinations
        ]
    )


def test_a_sweep_asks_only_the_nodes_with_a_message_and_delivers_each_once() -> None:
    state, grid, nodes = _engine()
    by_partition = {partition: node for node, partition in nodes.items()}
    sampled = [by_partition[p] for p in (7, 1_999, 3, 640)]
    _push(grid, sampled)
    queue: Queue[Message] = Queue()
    sweep(state, queue, nodes)
    assert state.asks == len(sampled)  # Flower's own sweep asks all 2,000 nodes
    out = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [m.metadata.dst_node_id for m in out] == sampled  # in the order they were pushed
    assert all(m.metadata.delivered_at != "" for m in out)
    sweep(state, queue, nodes)  # delivered messages are not delivered again
    assert queue.empty() and state.asks == len(sampled)


def test_two_messages_for_one_node_go_one_per_sweep_as_in_flower() -> None:
    state, grid, nodes = _engine()
    node = next(iter(nodes))
    _push(grid, [node, node])
    queue: Queue[Message] = Queue()
    sweep(state, queue, nodes)
    assert queue.qsize() == 1
    sweep(state, queue, nodes)
    assert queue.qsize() == 2


def test_the_engine_loop_uses_it_once_installed() -> None:
    original = vce_api.add_messages_to_queue
    try:
        install()
        assert vce_api.add_messages_to_queue is add_pending_messages_to_queue
        state, grid, nodes = _engine()
        _push(grid, list(nodes)[:3])
        queue: Queue[Message] = Queue()
        stop = threading.Event()
        loop = threading.Thread(
            target=vce_api.add_messages_to_queue, args=(state, queue, nodes, stop)
        )
        loop.start()
        received = [queue.get(timeout=10) for _ in range(3)]
        stop.set()
        loop.join()
        assert [m.metadata.dst_node_id for m in received] == list(nodes)[:3]
    finally:
        vce_api.add_messages_to_queue = original

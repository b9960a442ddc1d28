"""The engine's message thread on Flower's real in-memory LinkState and InMemoryGrid (no Ray).

What it must keep from Flower's ``add_messages_to_queue``: each message goes to the workers
once, only to a node of the simulation, never after its TTL, and at most one per node per scan.
What it changes: a push wakes it (Flower polled every 0.1 s, scanning every node).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from queue import Empty, Queue

import pytest
from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.common.date import now
from flwr.common.typing import Run, RunStatus
from flwr.server.grid.inmemory_grid import InMemoryGrid
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.fleet.vce.vce_api import _register_nodes
from flwr.server.superlink.linkstate import InMemoryLinkState, LinkStateFactory
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME

from fedshield import message_dispatch
from fedshield.message_dispatch import deliverable, dispatch_messages, install

RUN_ID = 7


@pytest.fixture
def engine() -> Iterator[tuple[InMemoryGrid, dict[int, int], Queue[Message], object]]:
    """A state with 3 registered nodes, a grid on it, and the dispatcher thread running."""
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME)
    state = factory.state()
    nodes = _register_nodes(3, factory)
    run = Run.create_empty(RUN_ID)
    run.status = RunStatus("running", "", "")
    run.starting_at = run.running_at = now().isoformat()
    state.run_ids[RUN_ID] = RunRecord(run=run)  # type: ignore[attr-defined]
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(RUN_ID)
    queue: Queue[Message] = Queue()
    stop = threading.Event()
    thread = threading.Thread(target=dispatch_messages, args=(state, queue, nodes, stop))
    thread.start()
    yield grid, nodes, queue, state
    stop.set()
    _push(grid, next(iter(nodes)))  # wakes the thread, which then sees the stop
    thread.join(timeout=5)
    assert not thread.is_alive()


def _push(grid: InMemoryGrid, node: int, ttl: float | None = None) -> str:
    message = Message(RecordDict(), dst_node_id=node, message_type="train", ttl=ttl)
    (message_id,) = grid.push_messages([message])
    return str(message_id)


def test_a_push_wakes_the_dispatcher_and_each_message_goes_once(
    engine: tuple[InMemoryGrid, dict[int, int], Queue[Message], object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    grid, nodes, queue, _ = engine
    # With no wake-up by the push, the thread would next look in a minute: the get would fail.
    monkeypatch.setattr(message_dispatch, "IDLE_WAKE", 60.0)
    time.sleep(0.2)  # the thread is now in its idle wait
    first, second = list(nodes)[:2]
    ids = {_push(grid, first), _push(grid, second)}
    got = [queue.get(timeout=10), queue.get(timeout=10)]
    assert {m.metadata.message_id for m in got} == ids
    assert {m.metadata.dst_node_id for m in got} == {first, second}
    with pytest.raises(Empty):
        queue.get(timeout=0.3)  # delivered once


def test_one_message_per_node_per_scan_the_next_one_follows(
    engine: tuple[InMemoryGrid, dict[int, int], Queue[Message], object],
) -> None:
    grid, nodes, queue, state = engine
    node = next(iter(nodes))
    ids = [_push(grid, node), _push(grid, node)]
    assert [queue.get(timeout=10).metadata.message_id for _ in ids] == ids
    # Both are marked delivered: Flower's own query finds nothing left for the node.
    assert state.get_message_ins(node_id=node, limit=None) == []  # type: ignore[attr-defined]


def test_expired_and_foreign_messages_are_not_delivered(
    engine: tuple[InMemoryGrid, dict[int, int], Queue[Message], object],
) -> None:
    grid, nodes, queue, state = engine
    node = next(iter(nodes))
    message_id = _push(grid, node, ttl=1.0)
    expired = state.message_ins_store[message_id]  # type: ignore[attr-defined]
    assert queue.get(timeout=10) is expired
    with state.lock:  # type: ignore[attr-defined]  # the dispatcher scans under this lock
        expired.metadata.delivered_at = ""  # as if never delivered ...
        expired.metadata.created_at -= 5.0  # ... and sent five seconds ago, one-second TTL
    # A node registered in the state but not part of this simulation's mapping:
    outsider = {n: 0 for n in _register_nodes(1, LinkStateFactory(FLWR_IN_MEMORY_DB_NAME))}
    assert deliverable(state, frozenset(outsider)) == ([], False)
    assert deliverable(state, frozenset(nodes)) == ([], False)
    assert expired.metadata.delivered_at == ""


NUM_NODES = 2_000


class _CountingState(InMemoryLinkState):
    """Flower's in-memory link state, counting the per-node asks Flower's own loop makes."""

    asks = 0

    def get_message_ins(self, node_id: int, limit: int | None) -> list[Message]:
        self.asks += 1
        return super().get_message_ins(node_id, limit)


def _large_engine() -> tuple[_CountingState, InMemoryGrid, dict[int, int]]:
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME)
    factory.state_instance = state = _CountingState()
    run_id = state.create_run(None, None, None, {}, ConfigRecord(), None)
    nodes = _register_nodes(num_nodes=NUM_NODES, state_factory=factory)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run_id)
    return state, grid, nodes


def _push_to(grid: InMemoryGrid, destinations: list[int]) -> None:
    grid.push_messages(
        [
            Message(content=RecordDict(), message_type=MessageType.QUERY, dst_node_id=node)
            for node in destinations
        ]
    )


def test_one_scan_takes_the_sampled_nodes_messages_without_asking_every_node() -> None:
    state, grid, nodes = _large_engine()
    by_partition = {partition: node for node, partition in nodes.items()}
    sampled = [by_partition[p] for p in (7, 1_999, 3, 640)]
    _push_to(grid, sampled)
    out, held_back = deliverable(state, frozenset(nodes))
    assert state.asks == 0  # Flower's loop asks all 2,000 nodes, each ask scanning the store
    assert [m.metadata.dst_node_id for m in out] == sampled and not held_back  # push order
    assert all(m.metadata.delivered_at != "" for m in out)
    assert deliverable(state, frozenset(nodes)) == ([], False)  # delivered once


def test_the_engine_uses_the_dispatcher_once_installed() -> None:
    original = vce_api.add_messages_to_queue
    try:
        install()
        assert vce_api.add_messages_to_queue is dispatch_messages
        state, grid, nodes = _large_engine()
        queue: Queue[Message] = Queue()
        stop = threading.Event()
        loop = threading.Thread(
            target=vce_api.add_messages_to_queue, args=(state, queue, nodes, stop)
        )
        loop.start()
        _push_to(grid, list(nodes)[:3])
        received = [queue.get(timeout=10) for _ in range(3)]
        stop.set()
        _push_to(grid, list(nodes)[:1])  # wakes the loop, which then sees the stop
        loop.join(timeout=10)
        assert not loop.is_alive()
        assert [m.metadata.dst_node_id for m in received] == list(nodes)[:3]
    finally:
        vce_api.add_messages_to_queue = original

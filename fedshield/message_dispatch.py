"""Hand the ServerApp's messages to the client workers the moment they are pushed.

Flower 1.23's simulation engine moves messages from its in-memory LinkState to the workers in
one thread (``vce_api.add_messages_to_queue``): every 0.1 s it asks the state for one message
per virtual node. Two costs follow:

* latency: a pushed message waits up to 0.1 s; ten digits clients train in about 15 ms each, so
  that wait was most of a quickstart round;
* work that grows with the federation: each poll calls ``get_message_ins`` once per node, and
  each call scans every stored message under the state's lock, ``O(nodes x messages)`` ten times a
  second whether or not anything was sent (10,000 nodes and 100 messages in flight: a million
  comparisons a poll).

:func:`dispatch_messages` is a drop-in replacement for that thread: pushing a message wakes it
(the state's ``store_message_ins`` is wrapped to set an event), and one scan of the store takes
every deliverable message, at most one per node per scan as Flower's ``limit=1`` does, marking
each delivered under the same rules (undelivered, addressed to a node of the simulation, TTL
not expired). :func:`install` puts it in place of Flower's function for the runs that follow.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from queue import Queue
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flwr.app import Message

IDLE_WAKE = 0.1
"""Seconds between checks of the stop flag when nothing is pushed (Flower's poll period)."""
HELD_BACK_WAKE = 0.005
"""Seconds before the next scan when a node had a second message waiting."""


def deliverable(state: Any, nodes: frozenset[int]) -> tuple[list[Message], bool]:
    """Take the messages to deliver now (at most one per node) and mark them delivered.

    ``state`` is Flower's ``InMemoryLinkState`` (its ``lock`` and ``message_ins_store``, the same
    fields its own ``get_message_ins`` reads). Returns the messages, in the order they were
    stored, and whether a node's further message was held back for the next scan.
    """
    taken: dict[int, Message] = {}
    held_back = False
    current = datetime.now(UTC).timestamp()  # flwr.common.date.now
    with state.lock:
        for message in state.message_ins_store.values():
            meta = message.metadata
            if meta.delivered_at != "" or meta.dst_node_id not in nodes:
                continue
            if meta.created_at + meta.ttl <= current:
                continue
            if meta.dst_node_id in taken:
                held_back = True
                continue
            taken[meta.dst_node_id] = message
        delivered_at = datetime.now(UTC).isoformat()
        for message in taken.values():
            message.metadata.delivered_at = delivered_at
    return list(taken.values()), held_back


def dispatch_messages(
    state: Any, queue: Queue[Message], nodes_mapping: dict[int, int], f_stop: threading.Event
) -> None:
    """The engine's message thread (``vce_api.add_messages_to_queue``'s signature), woken by
    every push instead of polling all nodes every 0.1 s."""
    nodes = frozenset(nodes_mapping)
    pushed = threading.Event()
    store = state.store_message_ins

    def store_and_wake(message: Message) -> str | None:
        message_id: str | None = store(message)
        pushed.set()
        return message_id

    state.store_message_ins = store_and_wake
    while not f_stop.is_set():
        pushed.clear()  # before the scan: a push during it wakes the next wait at once
        messages, held_back = deliverable(state, nodes)
        for message in messages:
            queue.put(message)
        pushed.wait(HELD_BACK_WAKE if held_back else IDLE_WAKE)


def install() -> None:
    """Use :func:`dispatch_messages` as the engine's message thread from now on."""
    from flwr.server.superlink.fleet.vce import vce_api

    vce_api.add_messages_to_queue = dispatch_messages

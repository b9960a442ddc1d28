"""The simulation engine's message extractor, at a cost set by the messages, not the nodes.

Flower 1.23's Simulation Engine moves messages from its link state to the backend's queue in
one thread (``vce_api.add_messages_to_queue``): every 0.1 s it asks the link state, for each
registered node, for one undelivered message, and each ask scans every stored message under the
state's lock. A sweep costs (registered nodes) x (stored messages): with 10,000 virtual clients
and 100 sampled, a million checks every 0.1 s, holding the lock the ServerApp needs to push and
pull; the round then waits on node count, not on the sampled clients.

:func:`add_pending_messages_to_queue` is the same loop asking only the nodes that have an
undelivered message (one pass over the store finds them). Everything else is Flower's: the
public ``get_message_ins(node_id, limit=1)`` still picks, checks the TTL of and marks each
message, one per node per sweep, every 0.1 s. :func:`install` puts it in place of Flower's (the
engine looks the function up in its module when it starts); a link state that is not Flower's
in-memory one gets Flower's own sweep over every node.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from queue import Queue

from flwr.app import Message
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.linkstate import InMemoryLinkState, LinkState


def pending_nodes(state: LinkState, nodes: Mapping[int, int]) -> list[int]:
    """Registered nodes with an undelivered message, in the order the messages were stored."""
    if not isinstance(state, InMemoryLinkState):
        return list(nodes)
    with state.lock:
        waiting = dict.fromkeys(
            m.metadata.dst_node_id
            for m in state.message_ins_store.values()
            if m.metadata.delivered_at == ""
        )
    return [node for node in waiting if node in nodes]


def sweep(state: LinkState, queue: Queue[Message], nodes: Mapping[int, int]) -> None:
    """One pass of the extractor: at most one message per node with one waiting."""
    for node_id in pending_nodes(state, nodes):
        for message in state.get_message_ins(node_id=node_id, limit=1):
            queue.put(message)


def add_pending_messages_to_queue(
    state: LinkState,
    queue: Queue[Message],
    nodes_mapping: Mapping[int, int],
    f_stop: threading.Event,
) -> None:
    """Flower's ``add_messages_to_queue`` (same signature), sweeping pending nodes only."""
    while not f_stop.is_set():
        sweep(state, queue, nodes_mapping)
        f_stop.wait(0.1)  # Flower's own poll interval


def install() -> None:
    """Make the Simulation Engine use :func:`add_pending_messages_to_queue` (idempotent)."""
    vce_api.add_messages_to_queue = add_pending_messages_to_queue

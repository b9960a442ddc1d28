"""Round 0 handshake: learn which Flower node serves which data partition.

Flower's simulation gives nodes random 64-bit ids, so sampling by node id would differ between
two runs of the same seed. Each node answers a query with its ``partition-id``; the server then
samples partition ids with the seed and addresses the matching nodes. Each node also reports
its shard size, the bound the integrity gate holds later ``num_examples`` claims to.
"""

from __future__ import annotations

import time

from flwr.app import ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.server import Grid

from common import protocol as P
from common.errors import FedshieldError
from common.schema import Scenario


def discover_partitions(
    grid: Grid, scenario: Scenario, *, timeout: float
) -> tuple[dict[int, int], dict[int, int]]:
    """Wait for every node, ask each for its partition id and shard size.

    Returns ``(partition id -> node id, partition id -> shard size)``.
    """
    expected = scenario.data.num_clients
    deadline = time.monotonic() + timeout
    # Flower registers nodes asynchronously; sampling before all are up would skew round 1.
    while len(node_ids := list(grid.get_node_ids())) < expected:
        if time.monotonic() > deadline:
            raise FedshieldError(
                f"only {len(node_ids)} of {expected} nodes registered in {timeout:.0f}s"
            )
        time.sleep(0.2)
    config = ConfigRecord({P.SCENARIO: scenario.model_dump_json()})
    messages = [
        Message(
            content=RecordDict({P.CONFIG: config}), message_type=MessageType.QUERY, dst_node_id=n
        )
        for n in node_ids
    ]
    mapping: dict[int, int] = {}
    shard_sizes: dict[int, int] = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error():
            raise FedshieldError(
                f"node {reply.metadata.src_node_id} failed the handshake: {reply.error.reason}"
            )
        metrics = reply.content.metric_records.get(P.METRICS, MetricRecord())
        partition_id = P.integer(metrics, P.PARTITION_ID)  # ProtocolError: a one-line error
        mapping[partition_id] = int(reply.metadata.src_node_id)
        shard_sizes[partition_id] = P.integer(metrics, P.NUM_EXAMPLES)
    if sorted(mapping) != list(range(expected)):
        raise FedshieldError(
            f"handshake found partitions {sorted(mapping)}, expected 0..{expected - 1}"
        )
    return mapping, shard_sizes

"""Round 0 handshake: learn which Flower node serves which data partition.

Flower gives nodes random 64-bit ids, so sampling by node id would differ between two runs of
the same seed. The server samples partition ids with the seed and addresses the matching nodes;
this module finds those nodes, and each partition's shard size (the bound the integrity gate
later holds ``num_examples`` claims to). Two ways, by engine:

* **Simulation** (Flower's in-memory grid): the engine itself deals the partitions. It registers
  ``num_supernodes`` nodes in order and gives the i-th the ``node_config`` ``partition-id`` i
  (``flwr.server.superlink.fleet.vce.vce_api._register_nodes``); its link state lists nodes in
  registration order. The map is read from there and the shard sizes computed with the
  partitioner every client uses (:func:`common.data.shards.partitions_of`): **no message**, so
  round 1 contacts only the sampled nodes and 10,000 virtual clients cost nothing before it.
  Nothing a node says is trusted here; a reply claiming any other partition than the one read
  here is rejected (:mod:`server.decoding`), so an engine that dealt partitions differently
  would fail loudly on the first round, never silently.
* **Deployment** (any other grid: SuperNodes set their own ``partition-id``): the server asks
  every node for its partition id and shard size with one query message each.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from flwr.app import ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.server import Grid
from flwr.server.grid import InMemoryGrid
from flwr.supercore.constant import NodeStatus

from common import protocol as P
from common.data.shards import partitions_of
from common.errors import FedshieldError
from common.schema import Scenario
from server.stopping import StoppableGrid

Partitions = tuple[dict[int, int], dict[int, int]]
"""``(partition id -> node id, partition id -> shard size)``."""


def discover_partitions(grid: Grid, scenario: Scenario, *, timeout: float) -> Partitions:
    """Wait for every node, then map partitions to nodes (module docstring: which way)."""
    node_ids = _await_nodes(grid, scenario.data.num_clients, timeout)
    registered = engine_registry(grid)
    if registered is not None:
        return registry_partitions(registered, scenario)
    return _query_partitions(grid, scenario, node_ids, timeout)


def engine_registry(grid: Grid) -> list[int] | None:
    """Node ids in the order Flower's simulation engine registered them; None off simulation."""
    inner = grid.inner if isinstance(grid, StoppableGrid) else grid
    if not isinstance(inner, InMemoryGrid):
        return None
    return [n.node_id for n in inner.state.get_node_info(statuses=[NodeStatus.ONLINE])]


def registry_partitions(registered: Sequence[int], scenario: Scenario) -> Partitions:
    """Partition i is the i-th registered node; shard sizes from the scenario's partitioner."""
    expected = scenario.data.num_clients
    if len(registered) != expected:
        raise FedshieldError(
            f"the simulation engine registered {len(registered)} nodes, expected {expected}"
        )
    sizes = partitions_of(scenario)
    return (
        {p: int(node) for p, node in enumerate(registered)},
        {p: len(indices) for p, indices in enumerate(sizes)},
    )


def _await_nodes(grid: Grid, expected: int, timeout: float) -> list[int]:
    """The node ids once ``expected`` have registered (a one-line error after ``timeout``)."""
    deadline = time.monotonic() + timeout
    # Flower registers nodes asynchronously; sampling before all are up would skew round 1.
    while len(node_ids := list(grid.get_node_ids())) < expected:
        if time.monotonic() > deadline:
            raise FedshieldError(
                f"only {len(node_ids)} of {expected} nodes registered in {timeout:.0f}s"
            )
        time.sleep(0.2)
    return node_ids


def _query_partitions(
    grid: Grid, scenario: Scenario, node_ids: list[int], timeout: float
) -> Partitions:
    """Ask every node for its partition id and shard size (a deployment's SuperNodes)."""
    expected = scenario.data.num_clients
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

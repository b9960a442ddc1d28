"""The handshake maps partitions to nodes and records the shard size each node reports."""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import Message, MetricRecord, RecordDict

from common import protocol as P
from scenarios.loader import load_scenario
from server.handshake import discover_partitions


class _Grid:
    """Three nodes answering the query with (partition id, shard size)."""

    answers = {101: (2, 150), 102: (0, 144), 103: (1, 90)}

    def get_node_ids(self) -> list[int]:
        return list(self.answers)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float) -> list[Message]:
        replies = []
        for message in messages:
            partition, size = self.answers[message.metadata.dst_node_id]
            metrics = MetricRecord({P.PARTITION_ID: partition, P.NUM_EXAMPLES: size})
            replies.append(Message(RecordDict({P.METRICS: metrics}), reply_to=message))
        return replies


def test_shard_sizes_are_recorded_per_partition() -> None:
    scenario = load_scenario("scenarios/quickstart.toml", ["data.num_clients=3"])
    nodes, sizes = discover_partitions(_Grid(), scenario, timeout=1.0)  # type: ignore[arg-type]
    assert nodes == {2: 101, 0: 102, 1: 103}
    assert sizes == {2: 150, 0: 144, 1: 90}

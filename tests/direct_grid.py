"""A Flower ``Grid`` that delivers each message to its node's ``ClientApp`` in this process.

A transport, not a stand-in for any part under test: every message goes through Flower's wire
format (protobuf) both ways, as a real transport does, so no node shares (and the secagg mod
cannot mutate) another node's content; each node keeps its own ``Context``, where
``secaggplus_mod`` keeps its keys and shares between stages. It runs a whole federation (the
normal strategy or the SecAgg+ workflow) without Ray, serially: for tests and for measuring
the protocol's own compute (``benchmarks/secure_aggregation.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import uuid4

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.common.typing import Run
from flwr.server import Grid


class DirectGrid(Grid):
    """Delivers every message to its node's ``ClientApp`` at once (module docstring)."""

    def __init__(self, client_app: ClientApp, num_nodes: int) -> None:
        self.app = client_app
        self.contexts = {
            100 + p: Context(
                run_id=1,
                node_id=100 + p,
                node_config={"partition-id": p, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config={},
            )
            for p in range(num_nodes)
        }
        self._run = Run.create_empty(1)

    def set_run(self, run_id: int) -> None:
        self._run = Run.create_empty(run_id)

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, *args: object, **kwargs: object) -> Message:
        raise NotImplementedError("fedshield builds its messages itself")

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError("send_and_receive delivers directly")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError("send_and_receive delivers directly")

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = []
        for message in messages:
            message.metadata.__dict__["_run_id"] = self._run.run_id
            message.metadata.__dict__["_src_node_id"] = 1
            message.metadata.__dict__["_message_id"] = str(uuid4())
            # Through the wire format both ways, as a real transport does: a node must not
            # share (and the secagg mod must not mutate) another node's content.
            received = message_from_proto(message_to_proto(message))
            reply = self.app(received, self.contexts[received.metadata.dst_node_id])
            replies.append(message_from_proto(message_to_proto(reply)))
        return replies

"""Stopping a run from outside the ServerApp thread: a stop request and a grid that honours it.

Flower's ServerApp runs in its own thread and waits for replies inside ``Grid`` calls; a signal
handler (main thread only) cannot reach it, and Flower's engine waits for it to return. The
runner's handler calls :meth:`StopRequest.request`; :class:`StoppableGrid` then refuses to send
anything new and gives up waiting at once by raising :class:`RunInterrupted`,
which ``server.app.serve`` turns into an ``"interrupted"`` summary. No round starts after the
request, and the round in flight is abandoned (its replies are never aggregated).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.common.typing import Run
from flwr.server import Grid


class RunInterrupted(Exception):
    """The run was asked to stop (a signal, or the simulation engine failed)."""


class StopRequest:
    """A one-shot, thread-safe stop flag with the reason given by whoever set it first."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        """Ask the run to stop; the first reason wins."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        """Whether a stop has been requested."""
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking as soon as a stop is requested; whether one was."""
        return self._event.wait(seconds)

    def check(self) -> None:
        """Raise :class:`RunInterrupted` when a stop has been requested."""
        if self._event.is_set():
            raise RunInterrupted(self.reason)


class StoppableGrid(Grid):
    """Flower's ``Grid``, delegated, that raises :class:`RunInterrupted` once a stop is asked."""

    def __init__(
        self, grid: Grid, stop: StopRequest, poll: float = 0.1, first_poll: float = 0.002
    ) -> None:
        self._grid = grid
        self._stop = stop
        self._poll = poll
        self._first_poll = first_poll

    @property
    def inner(self) -> Grid:
        """The grid this one delegates to (the handshake reads the engine's node registry)."""
        return self._grid

    def set_run(self, run_id: int) -> None:
        self._grid.set_run(run_id)

    @property
    def run(self) -> Run:
        return self._grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self._grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        self._stop.check()  # nothing new leaves once a stop is asked
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self._stop.check()
        return self._grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Flower's push-then-poll loop (``InMemoryGrid.send_and_receive``), checking the stop.

        Flower polls every 0.1 s, which is most of a short round (10 digits clients train in
        about 15 ms each): here the wait starts at ``first_poll`` and doubles up to ``poll``
        while nothing arrives, and starts again after each reply, so a reply is seen within
        milliseconds in short rounds and long rounds poll no more often than Flower's.
        """
        pending = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        wait = self._first_poll
        while pending and (deadline is None or time.monotonic() < deadline):
            received = list(self.pull_messages(pending))
            replies.extend(received)
            pending.difference_update(m.metadata.reply_to_message_id for m in received)
            wait = self._first_poll if received else min(2 * wait, self._poll)
            if pending:
                self._stop.wait(wait)
        return replies

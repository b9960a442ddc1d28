"""Stopping the ServerApp from another thread, and the summary's status (no Ray here).

The adversary is a stop that arrives while the ServerApp waits for replies that will never come
(the engine is gone, or the operator pressed Ctrl-C): the wait must end at once, not at the
round timeout, and nothing may be sent after it.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest
from flwr.app import Message, RecordDict
from flwr.common.typing import Run
from flwr.server import Grid

from scenarios.loader import load_scenario
from server.run_log import RunLog
from server.stopping import RunInterrupted, StoppableGrid, StopRequest


class _SilentGrid(Grid):
    """Accepts every message and never replies; counts what was pushed."""

    def __init__(self) -> None:
        self.pushed = 0

    def set_run(self, run_id: int) -> None:
        del run_id

    @property
    def run(self) -> Run:
        raise NotImplementedError

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        raise NotImplementedError

    def get_node_ids(self) -> Iterable[int]:
        return [1, 2]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = [f"m{self.pushed + i}" for i, _ in enumerate(messages)]
        self.pushed += len(ids)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        del message_ids
        return []

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        raise AssertionError("StoppableGrid polls push/pull itself")


def test_a_stop_ends_the_wait_for_replies_and_nothing_is_sent_after_it() -> None:
    silent, stop = _SilentGrid(), StopRequest()
    grid = StoppableGrid(silent, stop, poll=0.01)
    # Without a stop, the wait lasts until the timeout and returns what came: nothing.
    assert list(grid.send_and_receive([object()], timeout=0.05)) == []  # type: ignore[list-item]
    waiter = threading.Timer(0.2, stop.request, args=("signal SIGINT",))
    waiter.start()
    with pytest.raises(RunInterrupted, match="signal SIGINT"):
        # Before the fix this waited for the round timeout (an hour here).
        grid.send_and_receive([object()], timeout=3600)  # type: ignore[list-item]
    waiter.join()
    assert silent.pushed == 2
    with pytest.raises(RunInterrupted):
        grid.push_messages([object()])  # type: ignore[list-item]
    assert silent.pushed == 2
    assert list(grid.get_node_ids()) == [1, 2]


class _Reply:
    """Just enough of a reply Message for the poll loop: the id it answers."""

    def __init__(self, reply_to: str) -> None:
        self.metadata = type("Metadata", (), {"reply_to_message_id": reply_to})()


class _LateGrid(_SilentGrid):
    """Replies to ``m0`` at the 6th pull and to ``m1`` at the 9th."""

    def __init__(self) -> None:
        super().__init__()
        self.pulls = 0

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self.pulls += 1
        due = {6: "m0", 9: "m1"}.get(self.pulls)
        return [_Reply(due)] if due in set(message_ids) else []  # type: ignore[list-item]


class _RecordedWaits(StopRequest):
    """A stop request that never stops and records how long each poll would have slept."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return False


def test_polls_back_off_from_milliseconds_and_start_again_after_each_reply() -> None:
    late, stop = _LateGrid(), _RecordedWaits()
    grid = StoppableGrid(late, stop, poll=0.01, first_poll=0.001)
    replies = grid.send_and_receive([object(), object()], timeout=3600)  # type: ignore[list-item]
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["m0", "m1"]
    # Doubling from 1 ms, capped at `poll`; the 6th pull brings m0 and the wait starts again;
    # the 9th brings m1 and nothing is pending: no sleep after it.
    assert stop.waits == pytest.approx([0.002, 0.004, 0.008, 0.01, 0.01, 0.001, 0.002, 0.004])
    assert late.pulls == 9


def test_the_first_reason_wins() -> None:
    stop = StopRequest()
    assert not stop.is_set()
    stop.check()  # no stop yet: nothing raised
    stop.request("the simulation engine failed: RuntimeError")
    stop.request("signal SIGINT")
    assert stop.is_set() and stop.reason == "the simulation engine failed: RuntimeError"


def test_the_summary_says_finished_or_interrupted_with_the_last_round(tmp_path: Path) -> None:
    scenario = load_scenario("quickstart")
    log = RunLog(tmp_path, scenario, frozenset(), stream=io.StringIO())
    assert log.finish({}, "interrupted") == {"status": "interrupted", "last_round": None}
    assert not (tmp_path / "accuracy.png").exists()
    log.record(0, {"accuracy": 0.1, "loss": 2.3}, None, {})
    summary = log.finish({"stopped_by": "signal SIGTERM"}, "interrupted")
    assert (summary["status"], summary["last_round"], summary["stopped_by"]) == (
        "interrupted",
        0,
        "signal SIGTERM",
    )
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert log.finish({})["status"] == "finished"

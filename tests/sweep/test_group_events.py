"""The group process's event channel: nothing after its final ``stops`` event.

The adversary here is timing: a Ctrl-C ends the child's main thread while a Flower session thread
is still finishing its cell and then reports it. Seen on a Ray-backend ``--jobs`` sweep: the late
report hit the closed events file and printed a thread traceback.
"""

from __future__ import annotations

import io
import json
import threading

from fedshield.sweep.group import EventChannel


def test_a_late_event_from_a_session_thread_is_dropped_not_written_to_the_closed_file() -> None:
    stream = io.StringIO()
    channel = EventChannel(stream)
    channel.emit({"cell": "a", "error": None, "summary": {"status": "finished"}})
    channel.emit({"stops": {"signals": [2], "engine_errors": []}}, last=True)
    stream.close()  # what the child's `with` does once child_main returns
    failures: list[BaseException] = []

    def late() -> None:  # the session thread reporting its interrupted cell
        try:
            channel.emit({"cell": "b", "error": None, "summary": {"status": "interrupted"}})
        except BaseException as err:  # noqa: BLE001 - any exception is the failure shown
            failures.append(err)

    thread = threading.Thread(target=late)
    thread.start()
    thread.join()
    assert failures == []


def test_every_event_before_the_final_one_is_one_json_line() -> None:
    stream = io.StringIO()
    channel = EventChannel(stream)
    channel.emit({"cell": "a", "error": None})
    channel.emit({"stops": {"signals": [], "engine_errors": []}}, last=True)
    channel.emit({"cell": "b", "error": None})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines == [{"cell": "a", "error": None}, {"stops": {"signals": [], "engine_errors": []}}]

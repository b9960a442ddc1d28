"""The ServerApp wrapper: how an error inside a run reaches the caller (no Ray needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from flwr.app import Context, RecordDict
from flwr.server import Grid

import server.app
from common.errors import ConfigError
from scenarios.loader import load_scenario
from server.app import RunOutcome, build_server_app


def _call(app: Any) -> None:
    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
    app(grid=cast(Grid, object()), context=context)  # the stubbed serve never touches it


def test_a_user_error_is_kept_for_the_caller_and_not_re_raised(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Re-raising a one-line ConfigError from the server thread would print its traceback on
    # stderr next to the runner's "error: ..." line.
    error = ConfigError("defense.root_size: got 5000; the digits training split has only 1437")

    def serve(*_: object) -> dict[str, Any]:
        raise error

    monkeypatch.setattr(server.app, "serve", serve)
    outcome = RunOutcome()
    _call(build_server_app(load_scenario("quickstart"), tmp_path, outcome))
    assert outcome.error is error and outcome.summary is None


def test_a_bug_is_kept_and_re_raised_so_flower_stops(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def serve(*_: object) -> dict[str, Any]:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(server.app, "serve", serve)
    outcome = RunOutcome()
    with pytest.raises(ZeroDivisionError):
        _call(build_server_app(load_scenario("quickstart"), tmp_path, outcome))
    assert isinstance(outcome.error, ZeroDivisionError)

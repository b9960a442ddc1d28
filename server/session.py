"""A warm session: one ServerApp ``main`` that serves several scenarios one after another.

Cells of a sweep that need the same virtual clients (same number of nodes, same client
resources, same client trust anchor) share one Flower simulation: the Ray actors, their imported
TensorFlow and their compiled models stay warm, and each cell pays only for its own rounds.
Each cell gets a fresh :func:`server.app.serve` (its own chain, adversary, guard, evaluator and
run directory) and its own round-0 handshake (the shard sizes depend on the cell's scenario).
Nothing server-side is shared between cells; client-side, every cache is keyed by the scenario
content it was built from (``clients/app.py``, ``common/data/shards.py``,
``common/learning/training.py``), and the optimizer is reset before every client.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from flwr.app import Context
from flwr.server import Grid
from flwr.serverapp import ServerApp

from common.schema import Scenario
from server.app import RunOutcome, serve_cell
from server.stopping import StopRequest


@dataclass(frozen=True)
class SessionCell:
    """One scenario of a session, where it writes, and where its outcome goes."""

    scenario: Scenario
    run_dir: Path
    outcome: RunOutcome


def build_session_app(
    cells: Sequence[SessionCell],
    stop: StopRequest,
    *,
    before: Callable[[SessionCell], None],
    after: Callable[[SessionCell], None],
) -> ServerApp:
    """A ServerApp serving ``cells`` in order until ``stop`` is set.

    ``before(cell)`` runs just before a cell starts and ``after(cell)`` once its outcome is
    known (finished, interrupted or failed); both run in the ServerApp's thread. A cell that
    fails with an unexpected error is recorded as failed (``outcome.error``) and the session
    goes on to the next cell: its replies still in flight are addressed to message ids the next
    cell never polls.
    """
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        del context  # the scenarios are the configuration
        for cell in cells:
            if stop.is_set():
                return
            before(cell)
            with suppress(Exception):  # serve_cell kept it in cell.outcome.error
                serve_cell(grid, cell.scenario, cell.run_dir, cell.outcome)
            after(cell)

    return app

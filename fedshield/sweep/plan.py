"""Every cell validated before the first one runs, and the cells grouped into warm sessions.

A group is the unit of execution: one Flower simulation session whose virtual clients serve
every cell of the group in turn (:mod:`server.session`). Cells can share clients when they need
the same clients: the same number of nodes, the same resources per node, and the same trust
anchor (the key a client verifies broadcasts with is set in the workers' environment when the
session starts, never taken from a message; see :class:`common.crypto.keys.ClientTrust`).
Groups share nothing, so they are independent units; :func:`concurrent_groups` says how many
may run at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.crypto.keys import ClientTrust
from common.errors import FedshieldError
from common.schema import Scenario
from fedshield.sweep.grid import Cell, GridSpec
from scenarios.loader import set_fields, validate_document
from scenarios.preflight import check_environment


@dataclass(frozen=True)
class PlannedCell:
    """A cell with its validated scenario (or why it is invalid) and its session group."""

    cell: Cell
    scenario: Scenario | None
    error: str | None
    group: int = -1

    def label(self, total: int) -> str:
        """``cell k/N (field=value ...)``: how progress lines and errors name the cell."""
        values = " ".join(f"{k}={_compact(v)}" for k, v in self.cell.coordinates.items())
        return f"cell {self.cell.index + 1}/{total} ({values})"


@dataclass
class Plan:
    """The validated grid: every cell in grid order, and the groups of runnable ones."""

    cells: list[PlannedCell]
    groups: list[list[PlannedCell]] = field(default_factory=list)

    @property
    def invalid(self) -> list[PlannedCell]:
        """The cells whose scenario failed validation."""
        return [c for c in self.cells if c.error is not None]


def session_key(scenario: Scenario) -> tuple[Any, ...]:
    """What the clients of a session are: cells with equal keys can share one session.

    The ClientApp (SecAgg+ or not) is part of it. The trust anchor is normalised: with integrity
    off a client verifies nothing, and with key files the seed plays no part, so seeds split
    groups only for seed-derived keys.
    """
    sim = scenario.simulation
    trust = ClientTrust.of(scenario.integrity, scenario.seed)
    if not trust.signed:
        trust = ClientTrust(signed=False, keys_dir=None, run_seed=0)
    elif trust.keys_dir is not None:
        trust = ClientTrust(signed=True, keys_dir=trust.keys_dir, run_seed=0)
    # A SecAgg+ cell needs the session's ClientApp with Flower's secaggplus_mod.
    secure = scenario.secure_aggregation.enabled
    return (sim.backend, scenario.data.num_clients, sim.num_cpus, sim.num_gpus, trust, secure)


def plan_grid(grid: GridSpec, sweep_dir: Path, *, local_gpus: bool = True) -> Plan:
    """Validate every cell (the checks ``fedshield validate`` runs) and group the valid ones.

    Each cell's output is the sweep directory, so the preflight checks the place it will write.
    ``local_gpus``: the clients run on this host (False on a cluster, whose GPUs and memory are
    on its nodes).
    """
    planned = []
    for cell in grid.cells():
        document = set_fields(cell.document, [("output", str(sweep_dir))])
        try:
            scenario = validate_document(document)
            check_environment(scenario, local_gpus=local_gpus)
        except FedshieldError as err:
            planned.append(PlannedCell(cell, None, str(err)))
        else:
            planned.append(PlannedCell(cell, scenario, None))
    return _grouped(planned)


def _grouped(planned: Sequence[PlannedCell]) -> Plan:
    """Group the valid cells by :func:`session_key`, groups in order of their first cell."""
    numbers: dict[tuple[Any, ...], int] = {}
    cells: list[PlannedCell] = []
    for item in planned:
        if item.scenario is None:
            cells.append(item)
            continue
        number = numbers.setdefault(session_key(item.scenario), len(numbers))
        cells.append(PlannedCell(item.cell, item.scenario, None, number))
    groups: list[list[PlannedCell]] = [[] for _ in numbers]
    for item in cells:
        if item.scenario is not None:
            groups[item.group].append(item)
    return Plan(cells, groups)


def concurrent_groups(actor_slots: int | None, num_groups: int) -> int:
    """How many groups may run at once (issue 14: sweeps on a cluster).

    ``actor_slots`` is None on the run's private local Ray: each session starts and ends its
    own Ray instance in this process, so groups run one after another. On an attached cluster
    (``--ray-address``) it is how many client actors of the most demanding group the cluster
    holds (Flower's count, per node ``floor(CPU / num_cpus)``, bounded by the GPUs and the
    memory the clients ask for: :func:`fedshield.ray_cluster.actor_capacity`). Each concurrent
    group needs at least one actor, so at most ``actor_slots`` groups, and at most
    ``num_groups``.
    """
    if actor_slots is None:
        return 1
    return max(1, min(num_groups, actor_slots))


def pool_share(actor_slots: int, at_once: int) -> int:
    """The actors one of ``at_once`` concurrent sessions may create: an equal share, at least 1.

    Flower sizes a session's actor pool to the whole cluster and holds every actor until the
    session ends. Two such sessions side by side would each get part of their actors placed
    and the rest pending, each waiting for the other's actors to go: a deadlock that only the
    round timeout ends. With shares the concurrent sessions fit together
    (``at_once * share <= actor_slots``).
    """
    return max(1, actor_slots // at_once)


def _compact(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}={_compact(v)}" for k, v in value.items()) + "}"
    return str(value)

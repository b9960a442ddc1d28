"""Monitoring over rounds: ``clients.jsonl`` (one line per client per round) and ``clients.png``.

Each line holds what the server saw of one sampled client in one round: its update's norm,
cosine and distance to the aggregate, whether a selecting rule picked it
(:mod:`server.client_stats`), and its fate: ``accepted``, ``rejected`` (with the gate's
reasons), ``refused`` or ``failed``. ``malicious`` is ground truth from the scenario, added here
in the metrics layer and never shown to a defense. The figure draws norm and cosine per client
over rounds, poisoners in red: a persistent poisoner is a separate curve (a large norm, or a
cosine far from the honest band) round after round.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.results import append_jsonl, atomic_write, read_jsonl
from server.round import RoundResult


def client_rows(
    server_round: int, result: RoundResult, malicious: frozenset[int]
) -> list[dict[str, Any]]:
    """The round's ``clients.jsonl`` records, by partition id."""
    stats = {c.partition_id: c for c in result.clients}
    rows = []
    for partition in sorted(set(result.sampled) | set(stats)):
        row: dict[str, Any] = {
            "round": server_round,
            "partition": partition,
            "malicious": partition in malicious,
            **_fate(partition, result),
        }
        if partition in stats:
            c = stats[partition]
            row.update(
                update_norm=c.update_norm,
                cosine_to_aggregate=c.cosine_to_aggregate,
                distance_to_aggregate=c.distance_to_aggregate,
                selected=c.selected,
            )
        rows.append(row)
    return rows


def _fate(partition: int, result: RoundResult) -> dict[str, Any]:
    """``status`` and the ``reasons`` the gate, the decoder or the client gave for it."""
    if partition in result.accepted:
        return {"status": "accepted", "reasons": list(result.flagged.get(partition, ()))}
    if partition in result.rejected:
        return {"status": "rejected", "reasons": list(result.rejected[partition])}
    if partition in result.refused:
        return {"status": "refused", "reasons": [result.refused[partition]]}
    if partition in result.failures:
        return {"status": "failed", "reasons": [result.failures[partition]]}
    return {"status": "unused", "reasons": []}


class ClientLog:
    """Appends each round's client records to ``clients.jsonl`` and draws ``clients.png``."""

    def __init__(self, run_dir: Path, malicious: frozenset[int]) -> None:
        self.path = run_dir / "clients.jsonl"
        self.figure = run_dir / "clients.png"
        self.malicious = malicious

    def record(self, server_round: int, result: RoundResult) -> None:
        """Append the round's lines, all of them or none (one atomic append, one ``fsync``)."""
        append_jsonl(self.path, *client_rows(server_round, result, self.malicious))

    def plot(self, title: str) -> None:
        """Draw ``clients.png`` from ``clients.jsonl`` (nothing when no round was recorded)."""
        if self.path.exists():
            plot_clients(read_jsonl(self.path), self.figure, title=title)


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> dict[int, list[tuple[int, float]]]:
    series: dict[int, list[tuple[int, float]]] = {}
    for row in rows:
        value = row.get(key)
        if value is not None and math.isfinite(value):
            series.setdefault(row["partition"], []).append((row["round"], value))
    return series


def _mark(axes: Any, rows: Sequence[Mapping[str, Any]], key: str) -> None:
    """Crosses on rejected updates, circles on the update a selecting rule (Krum) chose."""
    marks = (
        ("rejected", lambda r: r["status"] == "rejected", {"marker": "x", "color": "black"}),
        (
            "selected by the rule",
            lambda r: bool(r.get("selected")),
            {"marker": "o", "facecolors": "none", "edgecolors": "tab:green"},
        ),
    )
    for label, chosen, style in marks:
        points = [
            (r["round"], r[key])
            for r in rows
            if chosen(r) and r.get(key) is not None and math.isfinite(r[key])
        ]
        if points:
            axes.scatter(*zip(*points, strict=True), label=label, **style)


def plot_clients(rows: Sequence[Mapping[str, Any]], path: Path, *, title: str) -> None:
    """Norm and cosine to the aggregate per client over rounds; poisoners red, rejections x,
    the update a selecting rule chose circled."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    malicious = {row["partition"] for row in rows if row["malicious"]}
    figure = Figure(figsize=(7.0, 6.0), dpi=100)
    FigureCanvasAgg(figure)
    panels = (("update_norm", "update L2 norm"), ("cosine_to_aggregate", "cosine to aggregate"))
    for index, (key, label) in enumerate(panels, start=1):
        axes = figure.add_subplot(2, 1, index)
        for partition, points in sorted(_series(rows, key).items()):
            bad = partition in malicious
            rounds, values = zip(*points, strict=True)
            axes.plot(
                rounds,
                values,
                color="tab:red" if bad else "0.6",
                alpha=0.9 if bad else 0.5,
                linewidth=1.6 if bad else 0.8,
                marker=".",
                label="malicious" if bad else "honest",
            )
        _mark(axes, rows, key)
        axes.set(ylabel=label, xlabel="round" if index == 2 else None)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        handles, labels = axes.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        if unique:
            axes.legend(unique.values(), unique.keys(), loc="best", fontsize="small")
    figure.suptitle(title)
    atomic_write(path, lambda handle: figure.savefig(handle, format="png"))

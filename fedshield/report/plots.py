"""The report's figures, as PNGs that read without the code (titles, axis labels, legends).

* ``heatmap.png``: mean final clean accuracy over seeds, defenses down and attacks across,
  one panel per malicious fraction (and per value of any other swept field), the value
  written in every cell;
* ``curves.png``: clean accuracy per round, one line per defense (mean over seeds), one panel
  per attack (rows: malicious fraction and other swept fields);
* ``fraction.png``: mean final accuracy against the malicious fraction with the band of
  +/- one standard deviation over seeds, one line per defense, one panel per attack, and each
  defense's theoretical breakdown point (``breakdown.py``) as a dashed line in its colour.

matplotlib's object API on the Agg canvas (no pyplot state); the files are written atomically
and are the same bytes for the same inputs and matplotlib version.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from common.results import atomic_write
from fedshield.report.tables import Cell, attack_order, panels, stat

Curve = Sequence[tuple[int, float]]
"""``(round, accuracy)`` of one run."""


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> None:
    # No "Software" stamp: the bytes depend on the data and the renderer only.
    atomic_write(path, lambda h: figure.savefig(h, format="png", metadata={"Software": None}))


def _colours(defenses: Sequence[str]) -> dict[str, Any]:
    cmap = colormaps["tab20" if len(defenses) > 10 else "tab10"]
    return {d: cmap(i % cmap.N) for i, d in enumerate(defenses)}


LABEL_WIDTH = 32
"""Characters per line of a defense label; longer ones wrap after a comma (DeepSight's five
parameters would otherwise be wider than the panel)."""


def _wrapped(label: str) -> str:
    return "\n".join(textwrap.wrap(label, LABEL_WIDTH, break_long_words=False))


def heatmap(all_cells: Sequence[Cell], path: Path) -> None:
    """Mean final accuracy, defense x attack, one panel per fraction; the value in each cell."""
    defenses = sorted({c.defense for c in all_cells})
    attacks = sorted({c.attack for c in all_cells}, key=attack_order)
    groups = panels(all_cells)
    cols = min(len(groups), 3)
    rows = math.ceil(len(groups) / cols)
    labels = [_wrapped(d) for d in defenses]
    lines = max(label.count("\n") + 1 for label in labels)
    figure = _figure(
        1.5 + cols * (1.6 + 0.9 * len(attacks)) + (0.9 if lines > 1 else 0.0),
        1.0 + rows * (0.8 + 0.45 * len(defenses) * (1.0 + 0.1 * (lines - 1))),
    )
    axes = figure.subplots(rows, cols, squeeze=False)
    image = None
    for ax, (title, group) in zip(axes.flat, groups, strict=False):
        at = {(c.defense, c.attack): c.stat("final_accuracy") for c in group}
        values = np.array(
            [[s.mean if (s := at.get((d, a))) else np.nan for a in attacks] for d in defenses]
        )
        image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(values):
            text = "n/a" if np.isnan(value) else f"{value:.2f}"
            colour = "black" if not np.isnan(value) and value > 0.6 else "white"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=9)
        ax.set_xticks(range(len(attacks)), attacks, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(defenses)), labels, fontsize=8)
        ax.set(title=title, xlabel="attack", ylabel="defense")
    for ax in axes.flat[len(groups) :]:
        ax.set_axis_off()
    if image is not None:
        figure.colorbar(image, ax=axes, label="final clean accuracy (mean over seeds)")
    figure.suptitle("Final clean accuracy: defense x attack")
    _save(figure, path)


def _mean_curve(curves: Sequence[Curve]) -> tuple[list[int], list[float]]:
    by_round: dict[int, list[float]] = {}
    for curve in curves:
        for server_round, accuracy in curve:
            by_round.setdefault(server_round, []).append(accuracy)
    rounds = sorted(by_round)
    return rounds, [float(np.mean(by_round[r])) for r in rounds]


def curves(all_cells: Sequence[Cell], runs: Mapping[str, Curve], path: Path) -> None:
    """Accuracy per round, a line per defense; a panel per attack (rows: fraction, panel)."""
    defenses = sorted({c.defense for c in all_cells})
    attacks = sorted({c.attack for c in all_cells}, key=attack_order)
    colour = _colours(defenses)
    groups = panels(all_cells)
    figure = _figure(1.0 + 4.2 * len(attacks), 0.8 + 3.0 * len(groups))
    axes = figure.subplots(len(groups), len(attacks), squeeze=False, sharey=True)
    for row, (title, group) in enumerate(groups):
        for col, attack in enumerate(attacks):
            ax: Axes = axes[row][col]
            for cell in (c for c in group if c.attack == attack):
                mean = _mean_curve([runs[r["run"]] for r in cell.records])
                ax.plot(
                    *mean, marker="o", markersize=3, color=colour[cell.defense], label=cell.defense
                )
            ax.set(title=f"attack {attack}\n{title}", xlabel="round", ylim=(0.0, 1.0))
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("clean accuracy (mean over seeds)")
    _legend(figure, axes)
    figure.suptitle("Clean accuracy per round, per defense")
    _save(figure, path)


def _legend(figure: Figure, axes: Any) -> None:
    labels: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labels.setdefault(label, handle)
    if labels:
        # Columns as wide as a wrapped label fit the figure's width: one column of twenty
        # defenses would be taller than the panels it sits under.
        columns = max(1, min(len(labels), int(figure.get_figwidth() // 3.2)))
        names = [_wrapped(label) for label in labels]
        figure.legend(labels.values(), names, loc="outside lower center", fontsize=8, ncols=columns)


def fraction(all_cells: Sequence[Cell], breakdown: Mapping[str, float | None], path: Path) -> None:
    """Final accuracy vs malicious fraction (+/- std band), breakdown points dashed."""
    defenses = sorted({c.defense for c in all_cells})
    attacks = sorted({c.attack for c in all_cells}, key=attack_order)
    colour = _colours(defenses)
    panel_values = sorted({c.panel for c in all_cells})
    figure = _figure(1.0 + 4.6 * len(attacks), 1.2 + 3.4 * len(panel_values))
    axes = figure.subplots(len(panel_values), len(attacks), squeeze=False, sharey=True)
    for row, panel in enumerate(panel_values):
        for col, attack in enumerate(attacks):
            ax: Axes = axes[row][col]
            for defense in defenses:
                points = sorted(
                    (c.malicious, s)
                    for c in all_cells
                    if c.panel == panel and c.attack == attack and c.defense == defense
                    if (s := stat(r.get("final_accuracy") for r in c.records)) is not None
                )
                if not points:
                    continue
                x = [p for p, _ in points]
                mean = np.array([s.mean for _, s in points])
                std = np.array([s.std for _, s in points])
                ax.plot(x, mean, marker="o", color=colour[defense], label=defense)
                ax.fill_between(x, mean - std, mean + std, color=colour[defense], alpha=0.2)
                point = breakdown.get(defense)
                if point is not None:
                    ax.axvline(point, color=colour[defense], linestyle="--", linewidth=1)
                    ax.text(
                        point,
                        0.02,
                        f" breakdown {point:.2f}",
                        color=colour[defense],
                        rotation=90,
                        va="bottom",
                        ha="right",
                        fontsize=7,
                    )
            where = ", ".join(f"{f} = {v}" for f, v in panel)
            ax.set(title=f"attack {attack}" + (f"\n{where}" if where else ""), ylim=(0.0, 1.0))
            ax.set(xlabel="malicious fraction of clients")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("final clean accuracy (mean ± std over seeds)")
    _legend(figure, axes)
    figure.suptitle(
        "Final accuracy vs malicious fraction (dashed: each defense's theoretical breakdown point)"
    )
    _save(figure, path)

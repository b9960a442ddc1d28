"""The report's tables: cells (runs that differ only by seed) as mean +/- std, in Markdown.

A cell is one point of the grid without its seed: its defense, attack and malicious fraction
(``records.py``) plus any other swept field (a *panel* field: one table and one heatmap panel
per value). ``std`` is the sample standard deviation over seeds (``ddof = 1``); a cell with one
seed shows its value alone. In the defense x attack tables the best mean final accuracy of each
attack column is in bold (every defense that ties it, at the precision shown).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedshield.report.records import TIME_STEPS

COVERED = ("defense.", "attack.type", "attack.params", "attack.malicious", "seed", "name")
"""Swept fields the three axes (or the seed) already show."""


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation of one figure over a cell's seeds."""

    mean: float
    std: float
    n: int

    def text(self, digits: int, scale: float = 1.0) -> str:
        mean = f"{self.mean * scale:.{digits}f}"
        return mean if self.n == 1 else f"{mean} ± {self.std * scale:.{digits}f}"


def stat(values: Iterable[Any]) -> Stat | None:
    """The :class:`Stat` of the finite numbers among ``values`` (None when there are none)."""
    xs = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    if not xs:
        return None
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
    return Stat(mean, math.sqrt(var), len(xs))


WHOLE_SECTIONS = ("attack", "defense")
"""Sections a grid may sweep whole (``attack = {type = "dba", ...}``): the axes show them, as the
attack's type and parameters, its malicious fraction and the defense chain."""


def panel_fields(fields: Sequence[str]) -> list[str]:
    """Swept fields that are not one of the axes: each value gets its own table and panel."""
    return [f for f in fields if not f.startswith(COVERED) and f not in WHOLE_SECTIONS]


def shown(value: Any) -> str:
    """A coordinate value as a table shows it (JSON for lists and tables)."""
    if isinstance(value, str):
        return value
    return "-" if value is None else json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Cell:
    """The runs of one grid point, over seeds."""

    panel: tuple[tuple[str, str], ...]
    malicious: float
    defense: str
    attack: str
    records: tuple[Mapping[str, Any], ...]

    def stat(self, figure: str) -> Stat | None:
        return stat(r.get(figure) for r in self.records)


def attack_order(attack: str) -> tuple[bool, str]:
    """Sort key of attack labels: no attack first, then by name."""
    return attack != "none", attack


def cells(records: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> list[Cell]:
    """Group ``records`` by every coordinate but the seed, in a fixed order."""
    panels = panel_fields(fields)
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for record in records:
        panel = tuple((f, shown(record.get(f))) for f in panels)
        key = (panel, record["malicious"], record["defense"], record["attack"])
        groups.setdefault(key, []).append(record)
    ordered = sorted(groups, key=lambda k: (k[0], k[1], k[2], attack_order(k[3])))
    return [Cell(k[0], k[1], k[2], k[3], tuple(groups[k])) for k in ordered]


def panels(all_cells: Sequence[Cell]) -> list[tuple[str, list[Cell]]]:
    """``(title, cells)`` per malicious fraction and panel-field values, in order."""
    out: dict[str, list[Cell]] = {}
    for cell in all_cells:
        parts = [f"{f} = {v}" for f, v in cell.panel] + [f"malicious = {cell.malicious:g}"]
        out.setdefault(", ".join(parts), []).append(cell)
    return list(out.items())


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _text(s: Stat | None, digits: int, scale: float = 1.0) -> str:
    return "-" if s is None else s.text(digits, scale)


def defense_by_attack(
    group: Sequence[Cell], figure: str = "final_accuracy", *, higher_is_better: bool = True
) -> str:
    """``figure`` (mean +/- std), defenses down and attacks across; the best of each column in
    bold: the highest, or the lowest when ``higher_is_better`` is False (attack success)."""
    defenses = sorted({c.defense for c in group})
    attacks = sorted({c.attack for c in group}, key=attack_order)
    at = {(c.defense, c.attack): c.stat(figure) for c in group}
    pick = max if higher_is_better else min
    best = {}
    for attack in attacks:
        means = [f"{s.mean:.4f}" for d in defenses if (s := at.get((d, attack))) is not None]
        best[attack] = pick(means, key=float, default=None)
    rows = []
    for defense in defenses:
        row = [defense]
        for attack in attacks:
            s = at.get((defense, attack))
            text = _text(s, 4)
            bold = s is not None and f"{s.mean:.4f}" == best[attack]
            row.append(f"**{text}**" if bold else text)
        rows.append(row)
    return _table(["defense \\ attack", *attacks], rows)


SUMMARY_FIGURES: tuple[tuple[str, str, int], ...] = (
    ("final_accuracy", "final acc", 4),
    ("best_accuracy", "best acc", 4),
    ("attack_success_rate", "attack success", 4),
    ("epsilon", "epsilon", 3),
    ("detection_precision", "detect. precision", 3),
    ("detection_recall", "detect. recall", 3),
    ("mean_round_seconds", "round s", 3),
)


def all_cells(group: Sequence[Cell], panel: Sequence[str]) -> str:
    """One row per cell with every figure some run recorded (mean +/- std over seeds)."""
    figures = [f for f in SUMMARY_FIGURES if any(c.stat(f[0]) for c in group)]
    header = [
        "defense",
        "attack",
        "malicious",
        *panel,
        "seeds",
        *(label for _, label, _ in figures),
    ]
    rows = [
        [
            c.defense,
            c.attack,
            f"{c.malicious:g}",
            *(v for _, v in c.panel),
            str(len(c.records)),
            *(_text(c.stat(f), digits) for f, _, digits in figures),
        ]
        for c in group
    ]
    return _table(header, rows)


def cost_by_defense(records: Sequence[Mapping[str, Any]]) -> str:
    """What each defense costs: its mean round time and time split over all its runs (ms)."""
    defenses = sorted({r["defense"] for r in records})
    steps = [s for s in TIME_STEPS if any(r.get(f"time_{s}") is not None for r in records)]

    def of(defense: str, figure: str) -> Stat | None:
        return stat(r.get(figure) for r in records if r["defense"] == defense)

    rows: list[list[str]] = []
    for defense in defenses:
        round_ms = _text(of(defense, "mean_round_seconds"), 1, 1000.0)
        split = [_text(of(defense, f"time_{s}"), 2, 1000.0) for s in steps]
        rows.append([defense, str(sum(r["defense"] == defense for r in records)), round_ms, *split])
    header = ["defense", "runs", "round ms", *(f"{s} ms" for s in steps)]
    return _table(header, rows)

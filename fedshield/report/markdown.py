"""``report.md``: the tables, the figures, the command and the package versions, in Markdown.

Everything in it comes from the stored results and is sorted; no date, host or path is written
(not even the directory's own name). The same results give the same bytes, so a committed
report can be checked by regenerating it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from fedshield.report.collect import Runs
from fedshield.report.tables import (
    Cell,
    all_cells,
    cost_by_defense,
    defense_by_attack,
    panel_fields,
    panels,
)

FIGURES = {
    "heatmap": "heatmap.png",
    "curves": "curves.png",
    "fraction": "fraction.png",
}


@dataclass(frozen=True)
class Breakdown:
    """A defense's breakdown point and what it was derived from, for the report's table."""

    defense: str
    aggregator: str
    bound: str
    num_sampled: int
    point: float | None


def _command(runs: Runs, command: str | None) -> list[str]:
    given = command or runs.command
    if given is None:
        return [
            "The runs were made one by one; each run directory's `scenario.json` holds its "
            "complete, resolved configuration.",
        ]
    return ["```", given, "```"]


def _versions(runs: Runs) -> list[str]:
    """One column per distinct set of package versions among the runs."""
    sets: dict[tuple[tuple[str, str], ...], int] = {}
    for run in runs.runs:
        found = run.summary.get("package_versions")
        key = tuple(sorted(found.items())) if isinstance(found, dict) else ()
        sets[key] = sets.get(key, 0) + 1
    ordered = sorted(sets.items(), key=lambda item: (-item[1], item[0]))
    names = sorted({name for key, _ in ordered for name, _ in key})
    header = ["package", *(f"{count} run(s)" for _, count in ordered)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        cells = [dict(key).get(name, "-") for key, _ in ordered]
        lines.append(f"| {name} | " + " | ".join(str(c) for c in cells) + " |")
    lines.append("")
    lines.append(f"Tables and figures drawn with matplotlib {version('matplotlib')}.")
    return lines


def _breakdown_table(points: Sequence[Breakdown]) -> list[str]:
    lines = [
        "| defense | rule's bound | n per round | breakdown point |",
        "|---|---|---|---|",
    ]
    for b in points:
        point = "none declared" if b.point is None else f"{b.point:.2f}"
        lines.append(f"| {b.defense} | {b.bound} | {b.num_sampled} | {point} |")
    return lines


def _skipped(runs: Runs) -> list[str]:
    if not runs.skipped:
        return []
    return ["## Skipped runs", "", *(f"- {note}" for note in runs.skipped), ""]


def _accuracy(cells: Sequence[Cell]) -> list[str]:
    out = [
        "## Final clean accuracy (mean ± std over seeds)",
        "",
        "The best defense against each attack is in **bold**.",
        "",
    ]
    for title, group in panels(cells):
        out += [f"### {title}", "", defense_by_attack(group), ""]
    return [*out, f"![Final clean accuracy, defense x attack]({FIGURES['heatmap']})", ""]


def _attack_success(cells: Sequence[Cell]) -> list[str]:
    """The backdoor view: attack success rate per defense and attack, where runs record one."""
    if not any(c.stat("attack_success_rate") for c in cells):
        return []
    out = [
        "## Attack success rate after the last round (mean ± std over seeds)",
        "",
        "The defense with the lowest success rate against each attack is in **bold**.",
        "",
    ]
    for title, group in panels(cells):
        table = defense_by_attack(group, "attack_success_rate", higher_is_better=False)
        out += [f"### {title}", "", table, ""]
    return out


def render(
    runs: Runs,
    cells: Sequence[Cell],
    records: Sequence[Mapping[str, Any]],
    breakdown: Sequence[Breakdown],
    *,
    command: str | None,
) -> str:
    """The whole ``report.md``."""
    fields = ", ".join(f"`{f}`" for f in runs.fields) or "none"
    skipped = f"; {len(runs.skipped)} skipped (listed at the end)" if runs.skipped else ""
    lines = [
        "# Benchmark report" + ("" if runs.grid is None else f": {runs.grid}"),
        "",
        f"{len(runs.runs)} runs in {len(cells)} cells{skipped}. Swept fields: {fields}.",
        "`fedshield report` on this directory regenerates this report, `results.csv`, "
        "`results.jsonl` and the figures from the stored results, running nothing; "
        "`tensorboard --logdir` on it compares the runs round by round.",
        "",
        "## Command",
        "",
        *_command(runs, command),
        "",
        *_accuracy(cells),
        *_attack_success(cells),
        "## Accuracy against the malicious fraction",
        "",
        f"![Final accuracy against the malicious fraction]({FIGURES['fraction']})",
        "",
        "Breakdown points (dashed in the figure) are derived from each rule's declared bound "
        "on n, the updates per round (`fedshield/report/breakdown.py`).",
        "",
        *_breakdown_table(breakdown),
        "",
        "## Accuracy per round",
        "",
        f"![Clean accuracy per round]({FIGURES['curves']})",
        "",
        "## All cells",
        "",
        all_cells(cells, panel_fields(runs.fields)),
        "",
        "## What each defense costs",
        "",
        "Mean wall time of a round and its split, over every run of the defense (milliseconds, "
        "mean ± std over runs): `train_max` and `train_mean` are the slowest and the mean "
        "client's own local work (clients train in parallel), `attack` the simulated "
        "adversary, `integrity` the integrity gate and ledger, `aggregate` the defense's "
        "aggregation, `evaluate` the server's evaluation.",
        "",
        cost_by_defense(records),
        "",
        "## Package versions",
        "",
        *_versions(runs),
        "",
        *_skipped(runs),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"

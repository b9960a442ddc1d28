"""Markdown of the catalogue: ``docs/catalogue.md`` (every name) and the README's summary table.

String functions of a validated :class:`fedshield.catalogue.Catalogue`; the README table names
fedshield's entries only, each followed by its marks, so a reader sees at a glance what no
PyTorch peer has (★) and what Flower 1.23 ships (◆).

``python -m fedshield.catalogue_docs`` writes both (atomically) from ``docs/catalogue.toml``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from common.errors import ConfigError
from common.results import atomic_write_text
from fedshield.catalogue import KINDS, ROOT, Catalogue, Kind, Row, load

CATALOGUE_MD = ROOT / "docs" / "catalogue.md"
README = ROOT / "README.md"

README_HEADING = "## Catalogue"
LACKING_LABEL = "peers have, fedshield lacks"
KIND_LABELS: dict[str, str] = {
    "aggregator": "aggregators",
    "pre-aggregator": "pre-aggregators",
    "server-optimizer": "server optimisers",
    "attack": "attacks",
    "algorithm": "training",
    "feature": "other features",
}
_HEADINGS: dict[str, str] = {
    "aggregator": "Aggregation rules",
    "pre-aggregator": "Pre-aggregators",
    "server-optimizer": "Server optimisers",
    "attack": "Attacks",
    "algorithm": "Training algorithms",
    "feature": "Features that are not plug-ins",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def entry(catalogue: Catalogue, row: Row) -> str:
    """``row``'s README entry: its name in backticks, then its marks after a space, if any."""
    marks = catalogue.marks(row)
    return f"`{row.name}` {marks}" if marks else f"`{row.name}`"


def section(catalogue: Catalogue) -> str:
    """The README's "Catalogue" section (heading included, a blank line at the end)."""
    pytorch = [peer.name for peer in catalogue.peers.values() if peer.pytorch]
    intro = (
        f"What fedshield has beside the PyTorch benchmarks {', '.join(pytorch[:-1])} and "
        f"{pytorch[-1]} and Flower 1.23's built-ins, read from their source at a recorded commit: "
        "[docs/catalogue.md](docs/catalogue.md) gives each peer's own name for each entry "
        "(rendered from `docs/catalogue.toml` by `python -m fedshield.catalogue_docs`). "
        "★ no PyTorch peer has it; ◆ Flower 1.23 has it built in."
    )
    lines = [
        README_HEADING,
        "",
        *textwrap.wrap(intro, width=100, break_on_hyphens=False),
        "",
        "| kind | fedshield |",
        "|---|---|",
    ]
    for kind in KINDS:
        entries = ", ".join(entry(catalogue, row) for row in catalogue.rows(kind))
        lines.append(f"| {KIND_LABELS[kind]} | {entries} |")
    lacking = ", ".join(
        f"`{row.name}` ({', '.join(catalogue.peer_names(row))})" for row in catalogue.lacking
    )
    lines += [f"| {LACKING_LABEL} | {lacking} |", ""]
    return "\n".join(lines) + "\n"


def _sources(catalogue: Catalogue) -> list[str]:
    lines = [
        "## Sources read",
        "",
        "| peer | PyTorch | repository @ commit | read |",
        "|---|---|---|---|",
    ]
    for peer in catalogue.peers.values():
        for source in peer.sources:
            paths = ", ".join(f"`{path}`" for path in source.paths)
            framework = "yes" if peer.pytorch else "no"
            lines.append(
                f"| {peer.name} | {framework} | {source.repo} @ `{source.commit}` | {paths} |"
            )
    return lines


def _table(catalogue: Catalogue, rows: list[Row], *, first: str, with_kind: bool) -> list[str]:
    names = [peer.name for peer in catalogue.peers.values()]
    head = [first, "kind"] if with_kind else [first, "marks"]
    lines = [
        "| " + " | ".join([*head, "what", *names]) + " |",
        "|" + "---|" * (len(head) + 1 + len(names)),
    ]
    for row in rows:
        name = f"`{row.name}`" + (" (pending)" if row.pending else "")
        second = row.kind if with_kind else catalogue.marks(row)
        cells = [_cell(row.peers.get(key, "")) for key in catalogue.peers]
        lines.append("| " + " | ".join([name, second, _cell(row.title), *cells]) + " |")
    notes = [f"* `{row.name}`: {row.note}" for row in rows if row.note]
    return lines + ([""] + notes if notes else [])


def _kind_section(catalogue: Catalogue, kind: Kind) -> list[str]:
    rows = catalogue.rows(kind)
    return [
        "",
        f"## {_HEADINGS[kind]}",
        "",
        *_table(catalogue, rows, first="fedshield", with_kind=False),
    ]


def page(catalogue: Catalogue) -> str:
    """``docs/catalogue.md``: sources, one table per kind, then what fedshield lacks."""
    intro = (
        "Rendered from `docs/catalogue.toml` by `python -m fedshield.catalogue_docs`: edit the "
        "TOML, not this page. Each peer's catalogue was read from its source at the commit below "
        "(its registries, exports and config files), not from its README. A cell holds the "
        "peer's own name for the entry; a blank cell means the peer lacks it. "
        "★: no PyTorch peer (ByzFL, Blades, FLPoison, BackFed) has it. ◆: Flower 1.23 has it "
        "built in. (pending): being added on another branch, not registered yet."
    )
    lines = [
        "# Catalogue: fedshield beside its peers",
        "",
        *textwrap.wrap(intro, width=100, break_on_hyphens=False),
        "",
        *_sources(catalogue),
    ]
    for kind in KINDS:
        lines += _kind_section(catalogue, kind)
    lines += [
        "",
        "## What peers have and fedshield lacks",
        "",
        *_table(catalogue, list(catalogue.lacking), first="name", with_kind=True),
    ]
    return "\n".join(lines) + "\n"


def readme_section(readme: str) -> str:
    """The README's "Catalogue" section: from its heading up to the next ``## `` heading."""
    lines = readme.splitlines(keepends=True)
    if f"{README_HEADING}\n" not in lines:
        return ""
    start = lines.index(f"{README_HEADING}\n")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "".join(lines[start:end])


def replace_readme_section(readme: str, new: str) -> str:
    """``readme`` with its "Catalogue" section replaced, or inserted before "Development"."""
    current = readme_section(readme)
    if current:
        return readme.replace(current, new, 1)
    anchor = "## Development\n"
    if anchor not in readme:
        raise ConfigError("README.md: no '## Development' heading to put the Catalogue before")
    return readme.replace(anchor, new + anchor, 1)


def write(catalogue: Catalogue, *, markdown: Path = CATALOGUE_MD, readme: Path = README) -> None:
    """Render ``markdown`` and the "Catalogue" section of ``readme`` from ``catalogue``."""
    atomic_write_text(markdown, page(catalogue))
    text = readme.read_text(encoding="utf-8")
    atomic_write_text(readme, replace_readme_section(text, section(catalogue)))


if __name__ == "__main__":
    write(load())
    print(f"wrote {CATALOGUE_MD.relative_to(ROOT)} and the Catalogue section of README.md")

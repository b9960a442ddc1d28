"""The catalogue (issue 17): every registered plug-in has a row in ``docs/catalogue.toml`` and in
the README's table, and the README's marks say what the TOML says.

★ means no PyTorch peer (ByzFL, Blades, FLPoison, BackFed) has the entry; ◆ that Flower 1.23 has
it built in. The expected marks are computed here from the TOML's ``peers`` maps, independently
of the renderer, and the README is parsed, not compared as text only. Rows marked ``pending``
(plug-ins other branches are adding) are skipped until their name is registered.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from attacks import ATTACKS
from common.errors import ConfigError
from fedshield.catalogue import CATALOGUE_TOML, Catalogue, Row, load, parse
from fedshield.catalogue_docs import (
    KIND_LABELS,
    LACKING_LABEL,
    page,
    readme_section,
    replace_readme_section,
    section,
)
from strategies import AGGREGATORS, PRE_AGGREGATORS, SERVER_OPTIMIZERS

ROOT = Path(__file__).resolve().parents[1]
# Name sets: a Registry's ``in`` raises ConfigError for an unknown name (its __getitem__ does).
REGISTRIES: dict[str, frozenset[str]] = {
    kind: frozenset(registry)
    for kind, registry in (
        ("aggregator", AGGREGATORS),
        ("pre-aggregator", PRE_AGGREGATORS),
        ("server-optimizer", SERVER_OPTIMIZERS),
        ("attack", ATTACKS),
    )
}
REGISTERED = [
    (kind, name)
    for kind, registry in REGISTRIES.items()
    for name in sorted(registry)
    if name != "none"
]
CATALOGUE = load()
PYTORCH_PEERS = {"byzfl", "blades", "flpoison", "backfed"}
ENTRY = re.compile(r"`([a-z0-9_]+)`(?: ([★◆]+))?")
REGENERATE = (
    "edit docs/catalogue.toml, then run: PYTHONPATH=$PWD python -m fedshield.catalogue_docs"
)


def _readme_table() -> dict[str, dict[str, str]]:
    """The README's Catalogue table: row label -> {name: marks}."""
    rows: dict[str, dict[str, str]] = {}
    for line in readme_section((ROOT / "README.md").read_text(encoding="utf-8")).splitlines():
        if not line.startswith("| ") or line.startswith("| kind |"):
            continue
        label, cell = (part.strip() for part in line.strip().strip("|").split(" | ", 1))
        rows[label] = {match[1]: match[2] or "" for match in ENTRY.finditer(cell)}
    return rows


def _expected_marks(row: Row) -> str:
    return ("" if PYTORCH_PEERS & set(row.peers) else "★") + ("◆" if "flower" in row.peers else "")


def test_the_pytorch_peers_are_the_four_benchmarks() -> None:
    assert {key for key, peer in CATALOGUE.peers.items() if peer.pytorch} == PYTORCH_PEERS
    assert not CATALOGUE.peers["flower"].pytorch


@pytest.mark.parametrize(("kind", "name"), REGISTERED)
def test_every_registered_plugin_has_a_toml_row(kind: str, name: str) -> None:
    assert name in {row.name for row in CATALOGUE.plugin if row.kind == kind}, (
        f"{CATALOGUE_TOML.name}: no [[plugin]] row for {kind} {name!r}; {REGENERATE}"
    )


@pytest.mark.parametrize(("kind", "name"), REGISTERED)
def test_every_registered_plugin_is_in_the_readme_table(kind: str, name: str) -> None:
    assert name in _readme_table()[KIND_LABELS[kind]], (
        f"README Catalogue: no {name!r}; {REGENERATE}"
    )


@pytest.mark.parametrize("row", CATALOGUE.plugin, ids=lambda row: f"{row.kind}:{row.name}")
def test_readme_marks_agree_with_the_toml(row: Row) -> None:
    registry = REGISTRIES.get(row.kind)
    if registry is not None and row.name not in registry:
        if row.pending:
            pytest.skip(f"{row.kind} {row.name!r} is pending: not registered on this branch yet")
        pytest.fail(f"{CATALOGUE_TOML.name}: {row.kind} {row.name!r} is not registered")
    listed = _readme_table()[KIND_LABELS[row.kind]]
    assert row.name in listed, f"README Catalogue: no {row.name!r}; {REGENERATE}"
    assert listed[row.name] == _expected_marks(row), (
        f"README marks {row.name!r} {listed[row.name]!r}, the TOML's peers {sorted(row.peers)} "
        f"give {_expected_marks(row)!r}; {REGENERATE}"
    )


def test_the_lacking_row_lists_what_fedshield_does_not_register() -> None:
    lacking = [row.name for row in CATALOGUE.lacking]
    assert list(_readme_table()[LACKING_LABEL]) == lacking
    registered = {name for registry in REGISTRIES.values() for name in registry}
    assert not registered & set(lacking), "a [[lacking]] plug-in is registered: move its row"
    assert not {row.name for row in CATALOGUE.plugin} & set(lacking)
    assert all(row.peers for row in CATALOGUE.lacking), "a [[lacking]] row names no peer"


def test_the_docs_page_and_the_readme_section_are_rendered_from_the_toml() -> None:
    assert (ROOT / "docs" / "catalogue.md").read_text(encoding="utf-8") == page(CATALOGUE), (
        REGENERATE
    )
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_section(readme) == section(CATALOGUE), REGENERATE


# -- the rules on a hand-written catalogue -----------------------------------------------------

_SMALL = """
[peers.byzfl]
name = "ByzFL"
pytorch = true
sources = [
  { repo = "LPD-EPFL/byzfl", commit = "69bd1ac0116fa7ff9eaf6d8ae049650d8e5f7e55", paths = [] },
]
[peers.flower]
name = "Flower 1.23"
pytorch = false
sources = [
  { repo = "adap/flower", commit = "6d099a8822252f853742d101721cd71af571e292", paths = [] },
]

[[plugin]]
name = "krum"
kind = "aggregator"
title = "Krum"
peers = { byzfl = "Krum", flower = "Krum" }
[[plugin]]
name = "fedyogi"
kind = "server-optimizer"
title = "FedYogi"
peers = { flower = "FedYogi" }
[[plugin]]
name = "zero"
kind = "attack"
title = "Zero update"
peers = {}

[[lacking]]
name = "mda"
kind = "aggregator"
title = "MDA"
peers = { byzfl = "MDA" }
"""


def _small(old: str = "", new: str = "") -> Catalogue:
    assert old in _SMALL
    return parse(_SMALL.replace(old, new, 1) if old else _SMALL)


def test_marks_on_a_hand_written_catalogue() -> None:
    small = _small()
    krum, yogi, zero = small.plugin
    # A PyTorch peer has Krum: no star; Flower too: a diamond. Only Flower has FedYogi: both.
    assert [small.marks(krum), small.marks(yogi), small.marks(zero)] == ["◆", "★◆", "★"]
    table = section(small).splitlines()[-8:]
    assert table == [
        "| aggregators | `krum` ◆ |",
        "| pre-aggregators |  |",
        "| server optimisers | `fedyogi` ★◆ |",
        "| attacks | `zero` ★ |",
        "| training |  |",
        "| other features |  |",
        "| peers have, fedshield lacks | `mda` (ByzFL) |",
        "",
    ]


def test_a_misspelt_peer_or_key_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^catalogue.plugin\[0\].peers: got 'byfl'; peers are"):
        _small('peers = { byzfl = "Krum"', 'peers = { byfl = "Krum"')
    with pytest.raises(ConfigError, match=r"^catalogue.plugin.2.pendng: unknown key"):
        _small('title = "Zero update"', 'title = "Zero update"\npendng = true')
    with pytest.raises(ConfigError, match=r"^catalogue.lacking\[0\].name: got 'krum'"):
        _small('name = "mda"', 'name = "krum"')
    with pytest.raises(ConfigError, match=r"commit: got '69bd1ac'"):
        _small("69bd1ac0116fa7ff9eaf6d8ae049650d8e5f7e55", "69bd1ac")


def test_the_readme_section_is_replaced_or_put_before_development() -> None:
    new = "## Catalogue\n\nnew\n\n"
    without = "# x\n\n## Usage\n\nu\n\n## Development\n\nd\n"
    inserted = replace_readme_section(without, new)
    assert inserted == "# x\n\n## Usage\n\nu\n\n## Catalogue\n\nnew\n\n## Development\n\nd\n"
    replaced = replace_readme_section(inserted, "## Catalogue\n\nnewer\n\n")
    assert replaced == inserted.replace("new\n", "newer\n")
    with pytest.raises(ConfigError, match="no '## Development' heading"):
        replace_readme_section("# x\n", new)

"""The catalogue: fedshield's plug-ins and features beside its peers' (``docs/catalogue.toml``).

The TOML file records, for every plug-in fedshield registers and every feature it has, which
peers have it and under what name (read from each peer's source at a recorded commit), and the
peers' plug-ins fedshield lacks. Two peer groups matter to a researcher choosing a benchmark:
the PyTorch benchmarks (ByzFL, Blades, FLPoison, BackFed) and Flower 1.23's built-ins. A row
with no PyTorch peer is marked :data:`NO_PYTORCH_PEER`; a row Flower has, :data:`IN_FLOWER`.

``python -m fedshield.catalogue_docs`` renders ``docs/catalogue.md`` and the README's "Catalogue"
section from the TOML file; ``tests/test_catalogue.py`` fails when either drifts from it, or
when a registered plug-in has no row.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from common.errors import ConfigError
from common.validation import FieldError, Strict, one_line

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE_TOML = ROOT / "docs" / "catalogue.toml"

NO_PYTORCH_PEER = "★"
IN_FLOWER = "◆"
FLOWER = "flower"

Kind = Literal["aggregator", "pre-aggregator", "server-optimizer", "attack", "algorithm", "feature"]
KINDS: tuple[Kind, ...] = (
    "aggregator",
    "pre-aggregator",
    "server-optimizer",
    "attack",
    "algorithm",
    "feature",
)


class Source(Strict):
    """One repository read for a peer, at one commit."""

    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    paths: tuple[str, ...]


class Peer(Strict):
    """A peer library; ``pytorch`` separates the PyTorch benchmarks from Flower itself."""

    name: str
    pytorch: bool
    sources: tuple[Source, ...]


class Row(Strict):
    """One plug-in or feature: fedshield's name for it and each peer's own name."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: Kind
    title: str
    peers: dict[str, str]
    note: str = ""
    pending: bool = False


class Catalogue(Strict):
    """The whole file: peers, what fedshield has (``plugin``) and what it lacks (``lacking``)."""

    peers: dict[str, Peer]
    plugin: tuple[Row, ...]
    lacking: tuple[Row, ...]

    @model_validator(mode="after")
    def _known_peers_and_unique_names(self) -> Catalogue:
        seen: set[tuple[str, str]] = set()
        for table, rows in (("plugin", self.plugin), ("lacking", self.lacking)):
            for index, row in enumerate(rows):
                unknown = sorted(set(row.peers) - set(self.peers))
                if unknown:
                    raise FieldError(
                        f"catalogue.{table}[{index}].peers",
                        unknown[0],
                        f"peers are {sorted(self.peers)}",
                    )
                if (row.kind, row.name) in seen:
                    raise FieldError(
                        f"catalogue.{table}[{index}].name", row.name, "names are unique"
                    )
                seen.add((row.kind, row.name))
        return self

    def pytorch_peers(self, row: Row) -> list[str]:
        """The PyTorch peers that have ``row``, in file order."""
        return [key for key, peer in self.peers.items() if peer.pytorch and key in row.peers]

    def marks(self, row: Row) -> str:
        """``★`` when no PyTorch peer has ``row``, then ``◆`` when Flower 1.23 has it."""
        return (NO_PYTORCH_PEER if not self.pytorch_peers(row) else "") + (
            IN_FLOWER if FLOWER in row.peers else ""
        )

    def peer_names(self, row: Row) -> list[str]:
        """The display names of the peers that have ``row``, in file order."""
        return [peer.name for key, peer in self.peers.items() if key in row.peers]

    def rows(self, kind: Kind) -> list[Row]:
        """fedshield's rows of one kind, in file order."""
        return [row for row in self.plugin if row.kind == kind]


def parse(text: str) -> Catalogue:
    """Validate the catalogue's TOML text; a bad entry is a one-line :class:`ConfigError`."""
    try:
        return Catalogue.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"catalogue: not TOML: {error}") from None
    except ValidationError as error:
        raise ConfigError(one_line(error, "catalogue")) from None


def load(path: Path = CATALOGUE_TOML) -> Catalogue:
    """Read and validate ``docs/catalogue.toml``."""
    return parse(path.read_text(encoding="utf-8"))

"""A sweep's grid file: a base scenario, fixed overrides, swept lists and cases, expanded to cells.

```toml
base = "quickstart"                      # a scenario file (relative to the grid) or packaged name
[overrides]                              # set in every cell, not swept
rounds = 2
[sweep]                                  # the product of these lists, in this order ...
"attack.type" = ["sign_flip", "gaussian"]
seed = [1, 2]
[[sweep.cases]]                          # ... times these cases (settings that go together)
"defense.aggregator" = "krum"
"defense.params" = {num_byzantine = 1}
```

Several groups of cases multiply too: name each group under ``sweep.cases`` and the grid is the
lists times every group's cases (groups in file order):

```toml
[[sweep.cases.algorithm]]                # FedSGD ...
"train.batch_size" = 10000
[[sweep.cases.algorithm]]                # ... or several local epochs
"train.local_epochs" = 2
[[sweep.cases.defense]]                  # times every defense with its own parameters
"defense.aggregator" = "median"
```

Keys are dotted scenario fields, quoted so TOML keeps the dot (the names ``--set`` takes); a
value replaces the field whole, through :func:`scenarios.loader.set_fields`, the code behind
``--set``. The lists vary slowest-first in file order; the cases vary fastest (the last group
fastest of all).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.results import to_json
from scenarios.loader import read_document, set_fields

_GRID_KEYS = {"base", "overrides", "sweep"}
_SLUG_CHARS = re.compile(r"[^A-Za-z0-9_.=+-]+")


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its stable id, its swept values and the scenario document."""

    index: int
    id: str
    coordinates: dict[str, Any]
    document: dict[str, Any]


@dataclass(frozen=True)
class GridSpec:
    """A parsed grid file."""

    name: str
    base: dict[str, Any]
    lists: dict[str, list[Any]]
    case_groups: list[list[Mapping[str, Any]]]

    @property
    def fields(self) -> list[str]:
        """Every swept field: the lists' keys, then each key any case sets (first seen first)."""
        case_keys = dict.fromkeys(
            key for group in self.case_groups for case in group for key in case
        )
        return [*self.lists, *(k for k in case_keys if k not in self.lists)]

    def cells(self) -> list[Cell]:
        """The product of the lists times each group's cases, with every field's coordinate."""
        combos = itertools.product(*self.lists.values())
        cells = []
        for index, (values, *cases) in enumerate(itertools.product(combos, *self.case_groups)):
            settings = [item for case in cases for item in case.items()]
            document = set_fields(self.base, [*zip(self.lists, values, strict=True), *settings])
            coordinates = {f: _lookup(document, f) for f in self.fields}
            cells.append(Cell(index, cell_id(coordinates), coordinates, document))
        seen: dict[str, int] = {}
        for cell in cells:
            if (first := seen.setdefault(cell.id, cell.index)) != cell.index:
                raise ConfigError(
                    f"grid: cells {first + 1} and {cell.index + 1} have the same coordinates "
                    f"{cell.coordinates}; each value may appear once per list"
                )
        return cells


def grid_source(source: str) -> tuple[str, Path | None, str]:
    """``(name, directory for a relative base, TOML text)`` of a grid file or a packaged grid."""
    path = Path(source)
    if path.is_file():
        return path.stem, path.parent, path.read_text(encoding="utf-8")
    packaged = resources.files("scenarios") / "grids" / f"{source}.toml"
    if not packaged.is_file():
        names = ", ".join(packaged_grids())
        raise ConfigError(
            f"grid: no file {source!r} and no packaged grid of that name; packaged: {names}"
        )
    return source, None, packaged.read_text(encoding="utf-8")


def packaged_grids() -> list[str]:
    """Names of the grids shipped in ``scenarios/grids`` (``fedshield sweep NAME``)."""
    root = resources.files("scenarios") / "grids"
    return sorted(p.name.removesuffix(".toml") for p in root.iterdir() if p.name.endswith(".toml"))


def load_grid(source: str) -> GridSpec:
    """Parse and check the grid's shape (the cells' scenarios are checked by the sweep)."""
    name, directory, text = grid_source(source)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"grid {source!r}: not valid TOML ({err})") from None
    if unknown := sorted(set(raw) - _GRID_KEYS):
        raise ConfigError(f"grid: unknown key {unknown[0]!r}; allowed: base, overrides, sweep")
    base = raw.get("base")
    if not isinstance(base, str):
        raise ConfigError(f"grid.base: got {base!r}; expected a scenario file or packaged name")
    relative = None if directory is None else directory / base
    document = read_document(relative if relative is not None and relative.is_file() else base)
    overrides = _table(raw.get("overrides", {}), "grid.overrides")
    document = set_fields(document, overrides.items())
    sweep = dict(_table(raw.get("sweep", {}), "grid.sweep"))
    case_groups = _case_groups(sweep.pop("cases", None))
    lists = {key: _list(values, f"sweep.{key!r}") for key, values in sweep.items()}
    if not lists and not case_groups:
        raise ConfigError("grid.sweep: empty; give at least one list of values or one case")
    if (
        "seed" not in document
        and "seed" not in lists
        and not any(all("seed" in c for c in group) for group in case_groups)
    ):
        raise ConfigError(
            "grid: no seed in the base, the overrides, [sweep] or every case; a sweep needs "
            "fixed seeds so that a restart resumes the same cells"
        )
    return GridSpec(name, document, lists, case_groups)


def _case_groups(raw: object) -> list[list[Mapping[str, Any]]]:
    """``[[sweep.cases]]`` is one group; ``[[sweep.cases.NAME]]`` tables are one group each."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        named = {name: _list(cases, f"sweep.cases.{name}") for name, cases in raw.items()}
        return [[_table(c, f"sweep.cases.{name}") for c in cases] for name, cases in named.items()]
    return [[_table(case, "sweep.cases") for case in _list(raw, "sweep.cases")]]


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: got {value!r}; expected a table of dotted fields")
    return value


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: got {value!r}; expected a non-empty list")
    return value


def _lookup(document: Mapping[str, Any], dotted: str) -> Any:
    """The value at ``dotted`` in ``document``, None where the document leaves it unset."""
    node: Any = document
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def cell_id(coordinates: Mapping[str, Any]) -> str:
    """A readable, stable directory name: the values, then a hash of the coordinates.

    The hash keeps ids unique and lets a grid grow without renaming the cells that exist, so a
    restart after editing the grid still finds them.
    """
    canonical = to_json(dict(coordinates))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
    values = "_".join(_short(v) for v in coordinates.values())
    slug = _SLUG_CHARS.sub("-", values).strip("-")[:60]
    return f"{slug}-{digest}" if slug else digest


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        return "+".join(f"{k}={_short(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "+".join(_short(v) for v in value)
    return str(value)

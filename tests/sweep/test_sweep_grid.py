"""Grid files: the product of the lists times the cases, stable cell ids, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from fedshield.sweep.grid import cell_id, load_grid, packaged_grids
from scenarios.loader import set_fields

GRID = """\
base = "quickstart"
[overrides]
rounds = 2
"attack.malicious" = 1
[sweep]
"attack.type" = ["sign_flip", "gaussian"]
seed = [1, 2, 3]
[[sweep.cases]]
"defense.aggregator" = "fedavg"
[[sweep.cases]]
"defense.aggregator" = "krum"
"defense.params" = {num_byzantine = 1}
"""


def _grid(tmp_path: Path, text: str = GRID, name: str = "g.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_cells_are_the_product_of_the_lists_times_the_cases(tmp_path: Path) -> None:
    grid = load_grid(str(_grid(tmp_path)))
    cells = grid.cells()
    assert grid.fields == ["attack.type", "seed", "defense.aggregator", "defense.params"]
    assert len(cells) == 2 * 3 * 2
    # Lists vary slowest-first in file order, the cases fastest.
    assert [(c.coordinates["attack.type"], c.coordinates["seed"]) for c in cells[:4]] == [
        ("sign_flip", 1),
        ("sign_flip", 1),
        ("sign_flip", 2),
        ("sign_flip", 2),
    ]
    assert [c.coordinates["defense.aggregator"] for c in cells[:2]] == ["fedavg", "krum"]
    # A case that leaves a field unset shows the base's value (None: the base has none either).
    assert cells[0].coordinates["defense.params"] is None
    assert cells[1].coordinates["defense.params"] == {"num_byzantine": 1}
    # The overrides and the swept values reach the scenario document; the base stays as it was.
    assert cells[5].document["rounds"] == 2
    assert cells[5].document["attack"] == {"type": "sign_flip", "malicious": 1}
    assert cells[5].document["seed"] == 3
    assert [c.index for c in cells] == list(range(12))


def test_named_case_groups_multiply_in_file_order(tmp_path: Path) -> None:
    text = (
        'base = "quickstart"\n[sweep]\nseed = [1, 2]\n'
        '[[sweep.cases.algorithm]]\n"train.batch_size" = 10000\n"rounds" = 30\n'
        '[[sweep.cases.algorithm]]\n"train.local_epochs" = 2\n'
        '[[sweep.cases.defense]]\n"defense.aggregator" = "median"\n'
        '[[sweep.cases.defense]]\n"defense.aggregator" = "krum"\n'
        '"defense.params" = {num_byzantine = 1}\n'
        '[[sweep.cases.defense]]\n"defense.aggregator" = "fedavg"\n'
    )
    grid = load_grid(str(_grid(tmp_path, text)))
    cells = grid.cells()
    assert grid.fields == [
        "seed",
        "train.batch_size",
        "rounds",
        "train.local_epochs",
        "defense.aggregator",
        "defense.params",
    ]
    assert len(cells) == 2 * 2 * 3
    # The last group varies fastest; a case's settings stay together.
    head = [(c.coordinates["train.batch_size"], c.coordinates["defense.aggregator"]) for c in cells]
    assert head[:6] == [
        (10000, "median"),
        (10000, "krum"),
        (10000, "fedavg"),
        (32, "median"),
        (32, "krum"),
        (32, "fedavg"),
    ]
    assert cells[1].document["rounds"] == 30 and cells[4].document["rounds"] == 10
    assert cells[4].document["train"]["local_epochs"] == 2
    assert cells[1].coordinates["defense.params"] == {"num_byzantine": 1}
    assert len({c.id for c in cells}) == 12


def test_an_empty_case_group_is_refused(tmp_path: Path) -> None:
    text = 'base = "quickstart"\n[sweep]\nseed = [1]\n[sweep.cases]\nalgorithm = []\n'
    with pytest.raises(ConfigError, match=r"sweep.cases.algorithm: got \[\]; expected a non"):
        load_grid(str(_grid(tmp_path, text)))


def test_a_swept_table_replaces_the_field_whole() -> None:
    base = {"defense": {"aggregator": "trimmed_mean", "params": {"num_trimmed": 2}}}
    out = set_fields(
        base, [("defense.aggregator", "krum"), ("defense.params", {"num_byzantine": 1})]
    )
    assert out["defense"] == {"aggregator": "krum", "params": {"num_byzantine": 1}}
    assert base["defense"]["params"] == {"num_trimmed": 2}  # the input is not modified


def test_cell_ids_are_unique_readable_and_survive_a_grown_grid(tmp_path: Path) -> None:
    cells = load_grid(str(_grid(tmp_path))).cells()
    ids = [c.id for c in cells]
    assert len(set(ids)) == len(ids)
    assert ids[1].startswith("sign_flip_1_krum_num_byzantine=1-")
    grown = load_grid(str(_grid(tmp_path, GRID.replace("seed = [1, 2, 3]", "seed = [0, 1, 2, 3]"))))
    grown_ids = {c.id for c in grown.cells()}
    assert len(grown_ids) == 16 and set(ids) <= grown_ids
    assert cell_id({"seed": 1}) == cell_id({"seed": 1}) != cell_id({"seed": "1"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'base = "quickstart"\n[sweep]\nseed = []\n',
            "sweep.'seed': got []; expected a non-empty list",
        ),
        (
            'base = "quickstart"\n[sweep]\nseed = 3\n',
            "sweep.'seed': got 3; expected a non-empty list",
        ),
        ('base = "quickstart"\n[sweep]\n', "grid.sweep: empty"),
        ('base = "quickstart"\nsweeps = 1\n', "grid: unknown key 'sweeps'"),
        ("[sweep]\nseed = [1]\n", "grid.base: got None"),
        ('base = "nowhere"\n[sweep]\nseed = [1]\n', "scenario: no file 'nowhere'"),
        ('base = "quickstart"\n[sweep]\nseed = [1, 1]\n', "grid: cells 1 and 2 have the same"),
        (
            'base = "quickstart"\n[[sweep.cases]]\nx = 1\n[[sweep.cases]]\nx = 1\n',
            "same coordinates",
        ),
    ],
)
def test_bad_grids_fail_in_one_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_grid(str(_grid(tmp_path, text))).cells()
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_a_sweep_needs_fixed_seeds(tmp_path: Path) -> None:
    base = tmp_path / "base.toml"
    base.write_text('name = "b"\nrounds = 1\n')
    text = 'base = "base.toml"\n[sweep]\n"attack.type" = ["none"]\n'
    with pytest.raises(ConfigError, match="no seed in the base"):
        load_grid(str(_grid(tmp_path, text)))
    # A base next to the grid file is found relative to the grid, and a swept seed is enough.
    grid = load_grid(str(_grid(tmp_path, text + "seed = [4]\n")))
    assert grid.base["name"] == "b"
    assert grid.cells()[0].document["seed"] == 4


def test_unknown_grid_names_the_packaged_ones() -> None:
    assert {"smoke", "defenses_vs_attacks"} <= set(packaged_grids())
    with pytest.raises(
        ConfigError,
        match=(
            "packaged: backdoors_vs_defenses, defenses_vs_attacks, fedsgd_vs_fedopt, "
            "iba_vs_defenses, smoke"
        ),
    ):
        load_grid("no_such_grid")

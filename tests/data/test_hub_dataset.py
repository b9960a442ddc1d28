"""The ``hub`` dataset: a local dataset in the hub's formats, dealt by writer through flwr-datasets.

Offline: the fixtures write what the hub serves (a ``DatasetDict`` saved with ``save_to_disk``,
and parquet files with ``Image`` and ``ClassLabel`` features, FEMNIST's columns), and the
partition is checked against counts made here, row by row, and against flwr-datasets' own
``NaturalIdPartitioner.load_partition``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from flwr_datasets.partitioner import NaturalIdPartitioner

from common.data.datasets import load_dataset
from common.data.partitioners import partition
from common.errors import ConfigError
from scenarios.loader import validate_document

# Unsorted, unequal writers: partition ids follow the sorted ids, not first appearance.
WRITERS = {"f0417_03": 4, "f0002_41": 7, "f1000_11": 2, "f0100_22": 5, "f0003_08": 3}
SORTED = sorted(WRITERS)


def _table(seed: int) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    writer_of_row = rng.permutation([w for w, n in WRITERS.items() for _ in range(n)])
    images = rng.integers(0, 256, size=(len(writer_of_row), 28, 28), dtype=np.uint8)
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "writer_id": datasets.Value("string"),
            "character": datasets.ClassLabel(num_classes=62),
        }
    )
    return datasets.Dataset.from_dict(
        {
            "image": list(images),
            "writer_id": list(writer_of_row),
            "character": rng.integers(0, 62, size=len(writer_of_row)).tolist(),
        },
        features=features,
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("femnist_saved")
    datasets.DatasetDict({"train": _table(0)}).save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("femnist_parquet")
    _table(1).to_parquet(str(path / "train-00000-of-00001.parquet"))
    _table(2).select(range(6)).to_parquet(str(path / "test-00000-of-00001.parquet"))
    return path


def _load(path: Path, seed: int = 0, **params: object) -> object:
    return load_dataset("hub", test_fraction=0.2, seed=seed, params={"path": str(path), **params})


def test_partitions_are_the_writers_held_out_writers_are_the_test_set(saved: Path) -> None:
    data = _load(saved, seed=3)
    assert data.input_shape == (28, 28, 1) and data.num_classes == 62  # type: ignore[attr-defined]
    ids = data.natural_ids  # type: ignore[attr-defined]
    parts = partition(ids, num_clients=4, scheme="natural", params={}, seed=3)
    table = _table(0)
    # One writer of five held out (round(0.2 * 5)); the other four are the clients, in order.
    test_rows = len(data.y_test)  # type: ignore[attr-defined]
    held = [w for w in SORTED if WRITERS[w] == test_rows]
    kept = [w for w in SORTED if w not in held[:1]]
    assert [len(p) for p in parts] == [WRITERS[w] for w in kept]
    # flwr-datasets' own partition of the kept writers: the same sizes and the same labels.
    partitioner = NaturalIdPartitioner(partition_by="writer_id")
    partitioner.dataset = table
    for client, writer in enumerate(kept):
        theirs = partitioner.load_partition(SORTED.index(writer))
        assert set(theirs["writer_id"]) == {writer}
        mine = data.y_train[parts[client]]  # type: ignore[attr-defined]
        assert Counter(mine.tolist()) == Counter(theirs["character"])
    # Pixels / 255 of the rows kept, in the table's order.
    rows = [i for i, w in enumerate(table["writer_id"]) if w in kept]
    first = np.asarray(table[rows[0]]["image"], dtype=np.float32) / 255
    np.testing.assert_allclose(data.x_train[0, :, :, 0], first)  # type: ignore[attr-defined]


def test_a_test_split_keeps_every_writer_and_num_partitions_takes_the_first(parquet: Path) -> None:
    data = _load(parquet, test_split="test")
    sizes = np.bincount(data.natural_ids).tolist()  # type: ignore[attr-defined]
    assert sizes == [WRITERS[w] for w in SORTED] and len(data.y_test) == 6  # type: ignore[attr-defined]
    fewer = _load(parquet, test_split="test", num_partitions=2)
    assert np.bincount(fewer.natural_ids).tolist() == [7, 3]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"label": "letter"}, r"^data.params.label: got 'letter'; \S+ has columns image, "),
        ({"partition_by": "hsf_id"}, r"^data.params.partition_by: got 'hsf_id'; "),
        ({"num_partitions": 5}, r"^data.params.num_partitions: got 5; \S+ has 4 training "),
        ({"colour": 1}, r"^data.params.colour: "),
        ({"test_split": "valid"}, r"^data.params.test_split: got 'valid'; \S+ has train$"),
    ],
)
def test_bad_params_fail_in_one_line(saved: Path, params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(saved, seed=11, **params)


def test_a_missing_extra_names_the_install_command(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("flwr_datasets", "flwr_datasets.partitioner"):  # as if never installed
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(
        ConfigError,
        match=r"^data.dataset: got 'hub'; .* the hub extra: pip install fedshield\[hub\]$",
    ):
        _load(saved, seed=12)


def _scenario(saved: Path, clients: int, scheme: str = "natural", dataset: str = "hub") -> object:
    data = {"dataset": dataset, "num_clients": clients, "partition": {"scheme": scheme}}
    if dataset == "hub":
        data["params"] = {"path": str(saved)}
    return validate_document({"name": "hub", "seed": 5, "rounds": 1, "data": data})


def test_the_scenario_checks_deal_the_natural_partition_before_ray(saved: Path) -> None:
    assert _scenario(saved, 4).data.partition.scheme == "natural"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"^data.num_clients: got 3; the natural partition has 4"):
        _scenario(saved, 3)
    with pytest.raises(
        ConfigError, match=r"^data.partition.scheme: got 'natural'; dataset 'digits'"
    ):
        _scenario(saved, 4, dataset="digits")
    with pytest.raises(ConfigError, match=r"^data.params.path: "):
        validate_document({"name": "x", "rounds": 1, "data": {"params": {"path": "x"}}})

"""``hub``: a Hugging Face dataset with its natural partition, through flwr-datasets (optional).

Needs the ``hub`` extra (``pip install fedshield[hub]``: flwr-datasets and Hugging Face
``datasets``). ``data.params.path`` is a hub id (``flwrlabs/femnist``), a directory written by
``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or a directory of parquet files (the
hub's own storage format, read by ``datasets.load_dataset``). FEMNIST (Caldas et al. 2018,
LEAF, arXiv:1812.01097) is the default: 28x28 grayscale characters, 62 classes, one natural
partition per writer (``writer_id``).

The natural partition is flwr-datasets' ``NaturalIdPartitioner(partition_by=...)``: partition
id k is the k-th of the column's sorted unique values, and holds every row with that value.
Here each training row carries its partition id (``Dataset.natural_ids``), and the ``natural``
partition scheme (:mod:`common.data.partitioners`) gives client k partition k.

The test set: the ``test_split`` when one is named; otherwise whole partitions held out, a
seeded ``round(test_fraction * W)`` of the W writers (LEAF's by-user split: the server
evaluates on writers no client holds). ``num_partitions`` keeps the first N remaining
partitions (in partition-id order) as the federation, so a run can use 100 of FEMNIST's writers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from common.data.datasets import Dataset, DatasetSource, _make_dataset, register_dataset
from common.errors import ConfigError
from common.registry import Params
from common.seeding import derive_rng

EXTRA = "pip install fedshield[hub]"


class HubParams(Params):
    """Where the dataset lives and which columns hold the image, the label and the partition."""

    path: str = Field("flwrlabs/femnist", min_length=1)
    split: str = "train"
    test_split: str | None = None
    partition_by: str = "writer_id"
    image: str = "image"
    label: str = "character"
    num_partitions: int | None = Field(None, ge=1)


def _libraries() -> tuple[Any, Any]:
    """``datasets`` and flwr-datasets' ``NaturalIdPartitioner``, or the one-line install hint."""
    try:
        import datasets
        from flwr_datasets.partitioner import NaturalIdPartitioner
    except ImportError:
        raise ConfigError(
            f"data.dataset: got 'hub'; it needs flwr-datasets and datasets, the hub extra: {EXTRA}"
        ) from None
    datasets.disable_progress_bars()  # a run's stderr carries its own lines only
    return datasets, NaturalIdPartitioner


def _split(datasets: Any, params: HubParams, field: str) -> Any:
    """The split ``params.<field>`` names, from a ``save_to_disk`` directory, a parquet directory
    or the hub."""
    split, local = getattr(params, field), Path(params.path).expanduser()
    if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
        saved = datasets.load_from_disk(str(local))
        if not isinstance(saved, datasets.DatasetDict):
            return saved  # a single saved Dataset is the one split there is
        if split not in saved:
            raise ConfigError(
                f"data.params.{field}: got {split!r}; {params.path} has {', '.join(saved)}"
            )
        return saved[split]
    return datasets.load_dataset(params.path, split=split)


def _check_columns(table: Any, params: HubParams, fields: tuple[str, ...]) -> None:
    for field in fields:
        column = getattr(params, field)
        if column not in table.column_names:
            raise ConfigError(
                f"data.params.{field}: got {column!r}; {params.path} has columns "
                f"{', '.join(table.column_names)}"
            )


def _column(table: Any, name: str) -> NDArray[Any]:
    """One column as one numpy array (images decoded; equal shapes stacked)."""
    values = table.select_columns([name]).with_format("numpy")[:][name]
    if values.dtype == object:  # decoded one by one: stack them into one array
        values = np.stack(list(values))
    return np.asarray(values)


def _natural_ids(table: Any, partitioner: Any, column: str) -> NDArray[np.int64]:
    """flwr-datasets' partition id of every row (its sorted unique ids, looked up at once)."""
    partitioner.dataset = table
    count = partitioner.num_partitions  # builds its partition id -> natural id map
    ids = np.asarray([partitioner.partition_id_to_natural_id[k] for k in range(count)])
    return np.searchsorted(ids, _column(table, column)).astype(np.int64)


def _arrays(table: Any, params: HubParams) -> tuple[NDArray[Any], NDArray[Any]]:
    """Decoded images (one array) and labels of ``table``."""
    images = _column(table, params.image)
    if not np.issubdtype(images.dtype, np.integer) and images.size and images.max() > 1.0:
        raise ConfigError(
            f"data.params.image: got {params.image!r} with float pixels up to {images.max()}; "
            "need integers in [0, 255] or floats in [0, 1]"
        )
    return images, _column(table, params.label)


def _training_writers(
    writers: NDArray[np.int64], params: HubParams, *, test_fraction: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(partitions of the federation, partitions held out as the test set; none with a split)."""
    held = np.zeros(0, dtype=np.int64)
    if params.test_split is None:
        count = max(1, round(test_fraction * writers.size))
        if count >= writers.size:
            raise ConfigError(
                f"data.test_fraction: got {test_fraction}; {params.path} has {writers.size} "
                f"{params.partition_by} values and would keep none for training"
            )
        held = np.sort(derive_rng(seed, "hub", "test").choice(writers, count, replace=False))
        writers = np.setdiff1d(writers, held)
    if params.num_partitions is not None:
        if params.num_partitions > writers.size:
            raise ConfigError(
                f"data.params.num_partitions: got {params.num_partitions}; {params.path} "
                f"has {writers.size} training partitions by {params.partition_by}"
            )
        writers = writers[: params.num_partitions]
    return writers, held


@register_dataset("hub", source="Hugging Face via flwr-datasets (extra: hub)", params=HubParams)
class Hub(DatasetSource):
    """A Hugging Face image dataset with its natural partition (default FEMNIST by writer)."""

    seeded_split = True

    @staticmethod
    def read(paths: list[Path], *, test_fraction: float, seed: int) -> Dataset:
        return Hub.read_with(HubParams(), paths, test_fraction=test_fraction, seed=seed)

    @classmethod
    def read_with(
        cls, params: Any, paths: list[Path], *, test_fraction: float, seed: int
    ) -> Dataset:
        datasets, natural_id_partitioner = _libraries()
        table = _split(datasets, params, "split")
        _check_columns(table, params, ("image", "label", "partition_by"))
        if table.num_rows == 0:
            raise ConfigError(f"data.params.split: got {params.split!r}; it has no rows")
        partitioner = natural_id_partitioner(partition_by=params.partition_by)
        owners = _natural_ids(table, partitioner, params.partition_by)
        writers, held = _training_writers(
            np.arange(partitioner.num_partitions), params, test_fraction=test_fraction, seed=seed
        )
        if params.test_split is not None:
            test = _split(datasets, params, "test_split")
            _check_columns(test, params, ("image", "label"))
        else:
            test = table.select(np.flatnonzero(np.isin(owners, held)))
        rows = np.flatnonzero(np.isin(owners, writers))
        (x_train, y_train), (x_test, y_test) = (
            _arrays(table.select(rows), params),
            _arrays(test, params),
        )
        feature = table.features[params.label]
        num_classes = getattr(feature, "num_classes", None) or int(
            max(y_train.max(), y_test.max()) + 1
        )
        return _make_dataset(
            "hub",
            (x_train, y_train),
            (x_test, y_test),
            scale=255.0 if np.issubdtype(x_train.dtype, np.integer) else 1.0,
            num_classes=num_classes,
            # Kept partitions, in partition-id order, become clients 0..len(writers)-1.
            natural_ids=np.searchsorted(writers, owners[rows]).astype(np.int64),
        )

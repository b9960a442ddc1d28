"""Plug-ins declare what they need; the scenario checks and the dataset loader read it.

Each test registers a plug-in the checks have never heard of (in a copy of the registry) and
shows that its declaration alone decides: nothing outside a plug-in names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import Field

from common.data.datasets import DATASETS, Dataset, DatasetSource, load_dataset, register_dataset
from common.errors import ConfigError
from common.registry import ClassLabel, Params, class_labels
from scenarios.loader import validate_document
from strategies import AGGREGATORS
from strategies.base import Aggregate, Counts, StatelessRule, Updates
from strategies.registries import aggregator

MINIMAL = {"name": "t", "seed": 1, "rounds": 2}
CENTRAL_DP = {"enabled": True, "mode": "central"}


@pytest.fixture
def registries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Registrations made in a test vanish after it."""
    for registry in (AGGREGATORS, DATASETS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    yield


def _error(document: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as info:
        validate_document(document)
    return str(info.value)


class _PlainMean(StatelessRule):
    """A toy rule that declares it is the plain mean."""

    unweighted_mean_when = {}

    def aggregate(self, updates: Updates, num_examples: Counts) -> Aggregate:
        return updates.mean(axis=0)


class _Scored(_PlainMean):
    """A toy rule that declares it scores updates against the server's own."""

    unweighted_mean_when = None
    needs_reference = True


def test_central_dp_follows_the_rules_declaration(registries: None) -> None:
    aggregator("toy_mean")(_PlainMean)
    scenario = validate_document(
        {**MINIMAL, "dp": CENTRAL_DP, "defense": {"aggregator": "toy_mean"}}
    )
    assert scenario.defense.aggregator == "toy_mean"
    # fedavg declares that only its unweighted form is the plain mean.
    validate_document({**MINIMAL, "dp": CENTRAL_DP, "defense": {"params": {"weighted": False}}})
    message = _error({**MINIMAL, "dp": CENTRAL_DP, "defense": {"params": {"weighted": True}}})
    assert message.startswith("dp.mode: got 'central' with defense.aggregator 'fedavg' ")
    assert "(fedavg with weighted = false; toy_mean)" in message
    message = _error({**MINIMAL, "dp": CENTRAL_DP, "defense": {"aggregator": "median"}})
    assert message.startswith("dp.mode: got 'central' with defense.aggregator 'median' ")


def test_root_set_follows_the_rules_declaration(registries: None) -> None:
    aggregator("toy_scored")(_Scored)
    message = _error({**MINIMAL, "defense": {"aggregator": "toy_scored"}})
    assert message == (
        "defense.root_size: got 0; toy_scored scores updates against the server's update on "
        "its clean root dataset: set defense.root_size >= 1"
    )
    message = _error({**MINIMAL, "defense": {"root_size": 10}})
    assert message == (
        "defense.root_size: got 10; fedavg does not use a server root dataset (rules that do: "
        "fltrust, toy_scored, flare): remove the field"
    )


class _Labels(Params):
    target: ClassLabel = 0
    source: ClassLabel | None = Field(None)
    count: int = 7


def test_class_labels_are_the_fields_typed_class_label() -> None:
    assert class_labels(_Labels(target=3, source=5)) == {"target": 3, "source": 5}
    assert class_labels(_Labels()) == {"target": 0}  # an unset optional label is not checked
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        _Labels(target=-1)


@pytest.mark.parametrize(
    ("defense", "expected"),
    [
        (
            {"aggregator": "krum", "params": {"num_byzantine": True}},
            "defense.params.num_byzantine: got True; must be a number, not a boolean",
        ),
        (
            {"aggregator": "norm_bounding", "params": {"max_norm": float("inf")}},
            "defense.params.max_norm: got inf; Input should be a finite number",
        ),
    ],
)
def test_plugin_params_refuse_booleans_and_non_finite_numbers(
    defense: dict[str, object], expected: str
) -> None:
    assert _error({**MINIMAL, "defense": defense}).startswith(expected)


def test_the_loader_reads_a_datasets_declared_files_and_split(
    registries: None, tmp_path: Path
) -> None:
    reads: list[tuple[float, int]] = []

    @register_dataset("toy", source="toy.npy")
    class Toy(DatasetSource):
        """A toy dataset with one declared file and an official split."""

        files = {"toy.npy": "https://example.invalid/toy.npy"}

        @staticmethod
        def read(paths: list[Path], *, test_fraction: float, seed: int) -> Dataset:
            reads.append((test_fraction, seed))
            x = np.load(paths[0]).astype(np.float32)
            y = np.zeros(len(x), dtype=np.int64)
            return Dataset(x, y, x, y, 1, tuple(x.shape[1:]), "toy")

    with pytest.raises(ConfigError, match=r"^dataset 'toy': missing toy\.npy under "):
        load_dataset("toy", test_fraction=0.2, seed=0, data_dir=str(tmp_path))
    np.save(tmp_path / "toy.npy", np.ones((4, 2, 2, 1)))
    first = load_dataset("toy", test_fraction=0.2, seed=0, data_dir=str(tmp_path))
    assert load_dataset("toy", test_fraction=0.3, seed=9, data_dir=str(tmp_path)) is first
    assert len(reads) == 1  # no seeded split declared: one read serves every seed
    assert DATASETS["toy"].tags == {"split": "official", "source": "toy.npy"}

"""Fixtures of the robustness tests: a digits model trained by the clients' own local training."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from common.data.datasets import Dataset  # noqa: E402
from common.data.shards import dataset_of  # noqa: E402
from common.learning.models import build_model  # noqa: E402
from common.learning.training import compiled_model, train_locally  # noqa: E402
from common.schema import Scenario  # noqa: E402
from scenarios.loader import load_scenario  # noqa: E402

EPSILON = 0.1


def digits_scenario(*overrides: str) -> Scenario:
    """Quickstart's digits and MLP, trained centrally for a few epochs by ``train_locally``."""
    return load_scenario("quickstart", ["train.local_epochs=4", *overrides])


def trained(scenario: Scenario, dataset: Dataset) -> tf.keras.Model:
    """A model trained on the whole training split from a seeded initialisation."""
    tf.keras.utils.set_random_seed(0)
    start = [np.asarray(w) for w in build_model("mlp", dataset.input_shape, 10).get_weights()]
    model = compiled_model(scenario, dataset.input_shape, dataset.num_classes, dp=False)
    outcome = train_locally(
        model, start, dataset.x_train, dataset.y_train, scenario=scenario, seed=1, dp=False
    )
    fresh = build_model("mlp", dataset.input_shape, dataset.num_classes)
    fresh.set_weights(outcome.weights)
    return fresh


@pytest.fixture(scope="session")
def digits() -> Dataset:
    """The quickstart scenario's digits split (pixels in [0, 1])."""
    return dataset_of(digits_scenario())


@pytest.fixture(scope="session")
def clean_model(digits: Dataset) -> tf.keras.Model:
    """The MLP after 4 clean epochs on the digits training split."""
    return trained(digits_scenario(), digits)

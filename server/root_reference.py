"""FLTrust's server update ``g_0``: the global model trained on the server's clean root dataset.

Cao et al. 2021 ("FLTrust: Byzantine-robust Federated Learning via Trust Bootstrapping") give
the server a small clean root dataset, sampled uniformly at random from the union of the
clients' training data in their experiments (100 examples by default), and train the current
global model on it each round with the clients' own local-training settings. Here the root set
is drawn once from the training split with the scenario seed, and every round's training is
seeded by (seed, round), so ``g_0`` is reproducible. The server trains without DP: the root
data are the server's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from common.arrays import flatten
from common.data.datasets import Dataset
from common.data.shards import root_indices
from common.learning.training import compiled_model, train_locally
from common.schema import Scenario
from common.seeding import derive_seed


class RootReference:
    """The root dataset and the compiled model that turns a global model into ``g_0``."""

    def __init__(self, scenario: Scenario, dataset: Dataset) -> None:
        self.scenario = scenario
        self.indices = root_indices(scenario, dataset)
        self.x = dataset.x_train[self.indices]
        self.y = dataset.y_train[self.indices]
        self.model = compiled_model(scenario, dataset.input_shape, dataset.num_classes, dp=False)

    def update(
        self, server_round: int, global_weights: Sequence[NDArray[np.float32]]
    ) -> NDArray[np.float32]:
        """``g_0 = flatten(trained) - flatten(global)`` for this round, as a float32 vector."""
        outcome = train_locally(
            self.model,
            global_weights,
            self.x,
            self.y,
            scenario=self.scenario,
            seed=derive_seed(self.scenario.seed, "root", server_round),
            dp=False,
        )
        return flatten(outcome.weights) - flatten(global_weights)

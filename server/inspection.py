"""The model inspection a layer-aware rule reads (:class:`strategies.layout.Inspection`).

BackdoorIndicator's planted task (``server/indicator.py``) rides here too: the inspector plants
it in the round's broadcast (:meth:`ModelInspector.broadcast`) and probes it in the inspection.

LASA filters tensor by tensor and DeepSight reads the output layer, so both need the layout of
the flat update: built once from the global model's arrays. DeepSight also needs the division
differences (DDifs, Rieger et al. 2022) of every local model: the mean over uniform-noise
inputs of its softmax outputs divided by the global model's. A numpy rule cannot run the
model, so the server does, in :meth:`ModelInspector.ddifs`, on whatever rows the rule is given
(the round's updates, or an omniscient attacker's candidates through the chain view). The noise
sets are drawn once per seed index from the scenario seed and reused every round, as FLPoison
draws them once with seeds 0, 1, ...

FLARE needs each local model's penultimate-layer representations of the server's auxiliary
examples (its root set, ``defense.root_size``): :meth:`AuxiliarySet.features`, likewise on
whatever rows the rule is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import tensorflow as tf
from flwr.app import ArrayRecord
from numpy.typing import NDArray

from common.arrays import flatten, unflatten
from common.data.datasets import Dataset
from common.data.shards import root_indices
from common.learning.models import build_model
from common.schema import Scenario
from common.seeding import derive_rng
from server.indicator import IndicatorPlanter
from strategies.base import Rule, Updates
from strategies.layout import Inspection, Layout


class ModelInspector:
    """The layout of the global model and, when the rule needs them, its DDif probe."""

    def __init__(
        self,
        scenario: Scenario,
        dataset: Dataset,
        weights: Sequence[NDArray[np.float32]],
        *,
        ddifs: bool,
        indicator: IndicatorPlanter | None = None,
        features: bool = False,
    ) -> None:
        self.seed = scenario.seed
        self.input_shape = dataset.input_shape
        model = build_model(scenario.model.name, dataset.input_shape, dataset.num_classes)
        names = [  # "2:Dense/kernel": stable, unlike Keras's counted layer names
            f"{i}:{type(layer).__name__}/{w.name.split('/')[-1].split(':')[0]}"
            for i, layer in enumerate(model.layers)
            for w in layer.weights
        ]
        self.layout = Layout.of(weights, names if len(names) == len(weights) else ())
        self.model = model if ddifs or features else None
        self.use_ddifs = ddifs
        self.auxiliary = AuxiliarySet(scenario, dataset, model) if features else None
        self._noise: dict[tuple[int, int], NDArray[np.float32]] = {}
        self.indicator = indicator  # BackdoorIndicator's planted task

    def broadcast(self, arrays: ArrayRecord) -> ArrayRecord:
        """The round's global model as it is sent: with the indicator task planted, if any."""
        if self.indicator is None:
            return arrays
        return ArrayRecord(self.indicator.plant(arrays.to_numpy_ndarrays()))

    def inspection(self, global_weights: Sequence[NDArray[np.float32]]) -> Inspection:
        """This round's inspection: the layout, and the probes around ``global_weights``."""
        weights = list(global_weights)
        indicator = None if self.indicator is None else partial(self.indicator.accuracies, weights)
        return Inspection(
            self.layout,
            ddifs=partial(self.ddifs, weights) if self.use_ddifs else None,
            indicator=indicator,
            features=partial(self.auxiliary.features, weights)
            if self.auxiliary is not None
            else None,
        )

    def noise(self, seed: int, num_samples: int) -> NDArray[np.float32]:
        """Noise set ``seed``: uniform [0, 1) inputs (the data sets' pixel range)."""
        key = (seed, num_samples)
        if key not in self._noise:
            rng = derive_rng(self.seed, "deepsight-noise", seed)
            self._noise[key] = rng.random((num_samples, *self.input_shape), dtype=np.float32)
        return self._noise[key]

    def ddifs(
        self,
        global_weights: list[NDArray[np.float32]],
        updates: Updates,
        num_seeds: int,
        num_samples: int,
        epsilon: float,
    ) -> NDArray[np.float64]:
        """``(num_seeds, n, classes)``: per noise set and row, the mean over the inputs of the
        local model's probabilities over the global model's (plus ``epsilon``)."""
        assert self.model is not None
        base = flatten(global_weights)
        noises = [self.noise(seed, num_samples) for seed in range(num_seeds)]
        self.model.set_weights(global_weights)
        denominators = [self._probabilities(x) + epsilon for x in noises]
        out = np.empty((num_seeds, updates.shape[0], denominators[0].shape[1]))
        for i, row in enumerate(updates):
            self.model.set_weights(unflatten(base + row.astype(np.float32), global_weights))
            for s, (x, denominator) in enumerate(zip(noises, denominators, strict=True)):
                out[s, i] = (self._probabilities(x) / denominator).mean(axis=0)
        return out

    def _probabilities(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        assert self.model is not None
        return np.asarray(self.model(x, training=False), dtype=np.float64)


class AuxiliarySet:
    """FLARE's auxiliary examples, the server's root set (``defense.root_size``), and the
    model cut before its output layer whose outputs are the penultimate-layer
    representations (the inputs of the output layer, after their activation)."""

    def __init__(self, scenario: Scenario, dataset: Dataset, model: tf.keras.Model) -> None:
        indices = root_indices(scenario, dataset)
        self.x = dataset.x_train[indices]
        self.y = dataset.y_train[indices]
        self.model = model
        self.penultimate = tf.keras.Model(model.inputs, model.layers[-1].input)

    def features(
        self, global_weights: list[NDArray[np.float32]], updates: Updates, aux_class: int | None
    ) -> NDArray[np.float64]:
        """``(n, m, p)``: each local model's representations of the m root examples of class
        ``aux_class`` (all of them if ``None``)."""
        x = self.x if aux_class is None else self.x[self.y == aux_class]
        base = flatten(global_weights)
        out = []
        for row in updates:
            self.model.set_weights(unflatten(base + row.astype(np.float32), global_weights))
            out.append(np.asarray(self.penultimate(x, training=False), dtype=np.float64))
        return np.stack(out) if out else np.zeros((0, len(x), 0))


def model_inspector(
    chain: Rule,
    scenario: Scenario,
    dataset: Dataset,
    weights: Sequence[NDArray[np.float32]],
) -> ModelInspector | None:
    """The inspector a chain whose rule reads the model needs (None for every other rule)."""
    if not chain.needs_layout():
        return None
    task = chain.indicator_task()
    planter = None if task is None else IndicatorPlanter(scenario, dataset, task)
    return ModelInspector(
        scenario,
        dataset,
        weights,
        ddifs=chain.needs_ddifs(),
        indicator=planter,
        features=chain.needs_features(),
    )

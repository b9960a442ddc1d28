"""A durable backdoor's local training: the recipe its data attack gives, run with TensorFlow.

Neurotoxin (:class:`attacks.recipes.GradientMask`): the benign gradient on the client's CLEAN
shard at the global model, its bottom-``keep_ratio`` coordinates as the mask, then the
scenario's local epochs of masked (and projected) steps on the poisoned shard. Chameleon
(:class:`attacks.recipes.ContrastiveEncoder`): the contrastive stage, then the classifier
stage, on the poisoned shard.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from attacks.durable import bottom_k_mask
from attacks.recipes import GradientMask, TrainingRecipe
from common.data.shards import client_shard
from common.learning.constrained import loss_gradient, masked_stage, train_in_stages
from common.learning.contrastive import classifier_stage, contrastive_stage
from common.learning.local_round import StepBuilder
from common.learning.training import TrainOutcome
from common.schema import Scenario


def _split(flat: NDArray[np.bool_], like: list[NDArray[np.float32]]) -> list[NDArray[np.bool_]]:
    cuts = np.cumsum([a.size for a in like])[:-1]
    return [part.reshape(a.shape) for part, a in zip(np.split(flat, cuts), like, strict=True)]


def train_poisoner(
    scenario: Scenario,
    partition_id: int,
    recipe: TrainingRecipe,
    model: tf.keras.Model,
    base: list[NDArray[np.float32]],
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    seed: int,
) -> TrainOutcome:
    """Train ``model`` from the global weights ``base`` on the poisoned ``(x, y)`` by ``recipe``."""
    masks = None
    stages: list[tuple[StepBuilder, int]]
    if isinstance(recipe, GradientMask):
        clean_x, clean_y = client_shard(scenario, partition_id)
        model.set_weights(base)
        gradient = loss_gradient(model, clean_x, clean_y)
        flat = np.concatenate([g.ravel() for g in gradient])
        masks = _split(bottom_k_mask(flat, recipe.keep_ratio), gradient)
        stages = [(masked_stage(recipe.pgd_radius), scenario.train.local_epochs)]
    else:
        stages = [
            (
                contrastive_stage(
                    recipe.target, recipe.temperature, recipe.scale_weight, recipe.pgd_radius
                ),
                recipe.contrastive_epochs,
            ),
            (classifier_stage(recipe.pgd_radius), recipe.classifier_epochs),
        ]
    return train_in_stages(
        model,
        base,
        x,
        y,
        stages=stages,
        batch_size=scenario.train.batch_size,
        seed=seed,
        masks=masks,
    )

"""Local training: one compiled Keras model per worker process, reused for every client it serves.

Building a model per message made rounds 2.9x slower and leaked about 2 MB per build, so the
model is cached per architecture/optimizer key; weights are loaded into it and the optimizer's
state (momentum, Adam moments, step counter) is zeroed before every client, so nothing one client
did can leak into the next client served by the same actor.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from keras.src.engine.base_layer import BaseRandomLayer
from numpy.typing import NDArray

from common.learning.adversarial import batch_transform
from common.learning.batching import batch_plan, poisson_sampling_rate
from common.learning.local_round import StepFn, run_plan, sgd_step
from common.learning.models import MODELS
from common.learning.proximal import add_proximal_term, anchor
from common.schema import Scenario

_MODELS: dict[tuple[object, ...], tf.keras.Model] = {}
# Domain separation of the reproducible DP stream from the other uses of a client round's seed.
_DP_DOMAIN = int.from_bytes(b"dp-sgd", "big")


@dataclass(frozen=True)
class TrainOutcome:
    """What one client's local training produced."""

    weights: list[NDArray[np.float32]]
    mean_loss: float
    local_steps: int
    sampling_rate: float


def _optimizer(scenario: Scenario) -> tf.keras.optimizers.Optimizer:
    train = scenario.train
    if train.optimizer == "adam":
        return tf.keras.optimizers.Adam(learning_rate=train.learning_rate)
    return tf.keras.optimizers.SGD(learning_rate=train.learning_rate, momentum=train.momentum)


def _model_key(
    scenario: Scenario, input_shape: tuple[int, ...], num_classes: int, dp: bool
) -> tuple[object, ...]:
    dp_key = scenario.dp.model_dump_json() if dp else None
    return (
        scenario.model.name,
        scenario.model.l2,
        input_shape,
        num_classes,
        scenario.train.model_dump_json(),
        dp_key,
    )


def compiled_model(
    scenario: Scenario, input_shape: tuple[int, ...], num_classes: int, *, dp: bool
) -> tf.keras.Model:
    """The worker's cached compiled model for this scenario (DP-SGD variant when ``dp``)."""
    key = _model_key(scenario, input_shape, num_classes, dp)
    model = _MODELS.get(key)
    if model is None:
        layers = MODELS[scenario.model.name].target(input_shape, num_classes, scenario.model.l2)
        if dp:
            # Imported here: tensorflow-privacy costs about 3 s of CPU per process to import,
            # paid by every actor and the driver of a run without DP otherwise.
            from common.learning.dp import build_dp_model

            poisson = scenario.dp.sampling == "poisson"
            model = build_dp_model(
                layers,
                l2_norm_clip=scenario.dp.l2_norm_clip,
                noise_multiplier=scenario.dp.noise_multiplier,
                num_microbatches=scenario.dp.num_microbatches,
                # Poisson batches vary in size: divide by the expected size b, not |B|, so the
                # mechanism is the one the Poisson accountant proves a bound for.
                expected_batch_size=scenario.train.batch_size if poisson else None,
            )
        else:
            model = tf.keras.Sequential(layers)
            if scenario.train.proximal_mu > 0:  # FedProx; refused with DP-SGD by the checks
                add_proximal_term(model, scenario.train.proximal_mu)
        # A reduced Loss instance, not a string: DP fast clipping needs per-example losses.
        model.compile(
            optimizer=_optimizer(scenario), loss=tf.keras.losses.SparseCategoricalCrossentropy()
        )
        _MODELS[key] = model
    return model


def reset_optimizer(model: tf.keras.Model) -> None:
    """Zero every optimizer variable (slots and iteration counter) before serving a new client."""
    for variable in model.optimizer.variables:
        variable.assign(tf.zeros_like(variable))


def dp_seed_sequence(scenario: Scenario, seed: int) -> np.random.SeedSequence:
    """Where one client round's DP noise and DP batch plan come from.

    Default: ``SeedSequence()`` with no argument, i.e. 128 bits from the operating system's
    entropy (``secrets``), fresh for every call: the server sends ``seed`` to the client and
    holds the scenario, so nothing it knows may decide the noise (with a seed-derived stream it
    regenerates the noise, subtracts it and recovers the clipped gradient sum). Only with
    ``dp.reproducible_noise = true`` does the sequence derive from ``seed`` (every epsilon is
    then reported as void against anyone holding the seed).
    """
    if scenario.dp.reproducible_noise:
        return np.random.SeedSequence([seed, _DP_DOMAIN])
    return np.random.SeedSequence()


def _seed_randomness(model: tf.keras.Model, seed: int) -> None:
    """Seed Python's and NumPy's generators, and TF's global seed only if a layer draws from it.

    Setting TF's global seed clears the eager context's caches, so the next call of the
    compiled round re-instantiates its graph: about 0.1 s per client round on the quickstart
    MLP, ten times the round's training. Layers without random ops (every built-in model) do
    not read that seed; a dropout-like layer (``BaseRandomLayer``) still gets it.
    """
    random.seed(seed)
    np.random.seed(seed)
    if any(isinstance(layer, BaseRandomLayer) for layer in model.submodules):
        tf.random.set_seed(seed)


def _private_step(model: tf.keras.Model) -> StepFn:
    step: StepFn = model.private_step
    return step


def train_locally(
    model: tf.keras.Model,
    weights: Sequence[NDArray[np.float32]],
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    *,
    scenario: Scenario,
    seed: int,
    dp: bool,
    adversarial: bool = True,
) -> TrainOutcome:
    """Load ``weights``, run the batch plan in one compiled call, return the new weights.

    Without ``dp`` the seed fixes Python's, NumPy's and TF's global generators (dropout) and the
    batch plan, so the round is a pure function of (weights, data, seed). With ``dp`` the plan
    uses the scenario's DP sampling, and the plan and the noise come from
    :func:`dp_seed_sequence` (OS entropy unless ``dp.reproducible_noise``); an empty Poisson
    batch is still a step (the DP model applies pure noise), as the accountant counts it.
    ``adversarial`` (honest clients) lets ``[robustness.training]`` replace part of each batch
    by adversarial examples (:func:`common.learning.adversarial.batch_transform`).
    """
    _seed_randomness(model, seed)
    plan_rng = np.random.default_rng(seed)
    if dp:
        plan_source, noise_source = dp_seed_sequence(scenario, seed).spawn(2)
        plan_rng = np.random.default_rng(plan_source)
        model.reseed_noise(noise_source)
    model.set_weights(list(weights))
    anchor(model)  # FedProx's w_t: the global weights just loaded (no-op without the term)
    reset_optimizer(model)
    plan = batch_plan(
        len(y),
        batch_size=scenario.train.batch_size,
        epochs=scenario.train.local_epochs,
        rng=plan_rng,
        sampling=scenario.dp.sampling if dp else "shuffle",
        drop_remainder=dp,
    )
    step = _private_step if dp else sgd_step
    if adversarial and scenario.robustness.training.enabled:
        # Adversarial examples are made against the model as it is before each step, so each
        # batch is one compiled call, with the transform ([robustness.training]) in between.
        transform = batch_transform(scenario.robustness.training, seed)
        losses = np.concatenate(
            [
                run_plan(model, step, *transform(model, x[b], y[b]), [np.arange(len(b))])
                for b in plan
            ]
        )
    else:
        losses = run_plan(model, step, x, y, plan)
    # An empty (noise-only) Poisson step reports loss 0: not a training loss.
    losses = losses[np.array([len(b) > 0 for b in plan], dtype=bool)]
    return TrainOutcome(
        weights=[np.asarray(w, dtype=np.float32) for w in model.get_weights()],
        mean_loss=float(np.mean(losses, dtype=np.float64)) if len(losses) else float("nan"),
        local_steps=len(plan),
        sampling_rate=poisson_sampling_rate(len(y), batch_size=scenario.train.batch_size),
    )

"""Training algorithms on the client: FedProx's proximal term (Li et al. 2020) and FedSGD's one
full-batch step per round, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from common.data.shards import client_shard
from common.errors import ConfigError
from common.learning.training import compiled_model, train_locally
from scenarios.loader import load_scenario, validate_document

LR, MU = 0.1, 0.5


def _scenario(mu: float):  # type: ignore[no-untyped-def]
    # One epoch of one batch of 16 examples: train_locally takes exactly one SGD step.
    overrides = [
        f"train.proximal_mu={mu}",
        f"train.learning_rate={LR}",
        "train.momentum=0.0",
        'train.optimizer="sgd"',
        "train.batch_size=16",
        "train.local_epochs=1",
        "model.l2=0.0",
    ]
    return load_scenario("quickstart", overrides)


def test_proximal_step_is_minus_lr_mu_times_the_distance_to_the_global_weights() -> None:
    # The gradient of mu/2 ||w - w_t||^2 is mu (w - w_t): zero on the first step (w = w_t);
    # on the second, SGD moves by an extra -lr mu (w_1 - w_t) on top of the data gradient,
    # which both runs evaluate at the same w_1.
    plain_s, prox_s = _scenario(0.0), _scenario(MU)
    x, y = client_shard(plain_s, 0)
    start = [np.asarray(w) for w in compiled_model(plain_s, (8, 8, 1), 10, dp=False).get_weights()]
    runs = {}
    for s in (plain_s, prox_s):
        model = compiled_model(s, (8, 8, 1), 10, dp=False)
        assert len(model.get_weights()) == len(start)  # the anchors are never sent
        first = train_locally(model, start, x[:16], y[:16], scenario=s, seed=1, dp=False).weights
        model.set_weights(first)  # continue from w_1; the anchors stay at w_t = start
        model.train_on_batch(x[16:32], y[16:32])
        runs[s.train.proximal_mu] = (first, model.get_weights())
    (first_plain, second_plain), (first_prox, second_prox) = runs[0.0], runs[MU]
    for a, b in zip(first_plain, first_prox, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)  # no pull on the first step
    for w0, w1, plain, prox in zip(start, first_prox, second_plain, second_prox, strict=True):
        np.testing.assert_allclose(prox, plain - LR * MU * (w1 - w0), rtol=0, atol=2e-7)
    assert (
        max(float(np.abs(w1 - w0).max()) for w0, w1 in zip(start, first_prox, strict=True)) > 1e-3
    )


def test_fedprox_is_refused_with_dp_sgd() -> None:
    document = {
        "name": "t",
        "seed": 1,
        "rounds": 1,
        "train": {"proximal_mu": 0.1},
        "dp": {"enabled": True, "mode": "local"},
    }
    with pytest.raises(ConfigError, match=r"^train\.proximal_mu: got 0\.1; FedProx"):
        validate_document(document)


def test_fedsgd_scenario_takes_one_full_batch_gradient_step() -> None:
    # algorithm_fedsgd: w_1 = w_0 - lr * grad of the mean loss over the client's whole shard.
    s = load_scenario("algorithm_fedsgd")
    model = compiled_model(s, (8, 8, 1), 10, dp=False)
    start = [np.asarray(w) for w in model.get_weights()]
    x, y = client_shard(s, 3)
    outcome = train_locally(model, start, x, y, scenario=s, seed=2, dp=False)
    assert outcome.local_steps == 1
    model.set_weights(start)
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.SparseCategoricalCrossentropy()(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    for w0, g, w1 in zip(start, grads, outcome.weights, strict=True):
        np.testing.assert_allclose(w1, w0 - s.train.learning_rate * g.numpy(), rtol=0, atol=1e-6)

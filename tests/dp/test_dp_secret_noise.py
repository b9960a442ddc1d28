"""The server plays the adversary: it holds the scenario and the seed it sent to the client.

One-step rounds (q = 1, momentum 0, SGD lr 0.1) make the released update
w' - w = -lr (S + Z) / b, with S the clipped gradient sum (which an adversary who knows the data
but one example wants to learn) and Z ~ N(0, sigma^2 C^2 I) the noise. The server computes S
itself (noise 0, same plan) and predicts Z from the seed: with the old derivation
(``Generator.from_seed(derive_seed(seed, "train", round, partition))``) the residual was 2.2e-7.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from numpy.typing import NDArray

from common.learning.models import build_model
from common.learning.training import compiled_model, train_locally
from common.schema import Scenario
from common.seeding import derive_seed
from scenarios.loader import load_scenario
from tests.dp._data import Digits

SHARD = 20  # < batch 32: q = 1 and ceil(20 / 32) = 1 Poisson step with every example in it
LR, BATCH, SIGMA = 0.1, 32, 1.0


def _scenario(*overrides: str) -> Scenario:
    return load_scenario(
        "dp_local",
        [
            "seed=7",
            f"train.batch_size={BATCH}",
            "train.local_epochs=1",
            "train.momentum=0.0",
            f"train.learning_rate={LR}",
            f"dp.noise_multiplier={SIGMA}",
            *overrides,
        ],
    )


def _base() -> list[NDArray[np.float32]]:
    tf.keras.utils.set_random_seed(0)  # the broadcast global model: the same in every call
    return [np.asarray(w) for w in build_model("mlp", (8, 8, 1), 10).get_weights()]


def _update(
    scenario: Scenario, digits: Digits, seed: int, *, n: int = SHARD
) -> NDArray[np.float64]:
    x, y = digits
    base = _base()
    model = compiled_model(scenario, (8, 8, 1), 10, dp=True)
    out = train_locally(model, base, x[:n], y[:n], scenario=scenario, seed=seed, dp=True)
    return np.concatenate([(a - b).ravel() for a, b in zip(out.weights, base, strict=True)])


def _old_noise(seed: int, shapes: list[tuple[int, ...]]) -> NDArray[np.float64]:
    # The pre-fix client: noise_generator.reset_from_seed(seed), one normal draw per variable.
    generator = tf.random.Generator.from_seed(seed)
    return np.concatenate([generator.normal(s, stddev=SIGMA).numpy().ravel() for s in shapes])


@pytest.mark.parametrize("reproducible", [False, True])
def test_server_cannot_regenerate_the_noise_from_the_seed(
    digits: Digits, reproducible: bool
) -> None:
    flag = f"dp.reproducible_noise={str(reproducible).lower()}"
    scenario = _scenario(flag)
    seed = derive_seed(scenario.seed, "train", 1, 0)  # what the server sends to partition 0
    released = _update(scenario, digits, seed)
    # The server's knowledge: S from a noise-free replay, and Z from the seed two ways.
    clipped = _update(_scenario(flag, "dp.noise_multiplier=0.0"), digits, seed)
    model = compiled_model(scenario, (8, 8, 1), 10, dp=True)
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    old_guess = clipped - LR * _old_noise(seed, shapes) / BATCH
    replay = _update(scenario, digits, seed)  # the client's own code run again by the server
    noise_norm = np.linalg.norm(released - clipped)
    assert noise_norm == pytest.approx(LR * SIGMA * np.sqrt(released.size) / BATCH, rel=0.05)
    # The old derivation explains nothing any more: residual ~ sqrt(2) x the noise.
    assert np.linalg.norm(released - old_guess) > 1.2 * noise_norm
    if reproducible:  # the switch gives the seed holder the noise, to float rounding
        assert np.linalg.norm(released - replay) < 1e-6 * noise_norm
    else:
        assert np.linalg.norm(released - replay) > 1.2 * noise_norm


@pytest.mark.parametrize("sampling", ["poisson", "shuffle"])
def test_two_runs_with_one_seed_differ_unless_the_switch_is_on(
    digits: Digits, sampling: str
) -> None:
    # 40 examples, batch 8: 5 steps whose plan (Poisson) and noise both come from the source.
    common = ("train.batch_size=8", f"dp.sampling={sampling!r}".replace("'", '"'))
    secret, fixed = (
        _scenario(*common, f"dp.reproducible_noise={flag}") for flag in ("false", "true")
    )
    first, second = (_update(secret, digits, seed=11, n=40) for _ in range(2))
    assert np.linalg.norm(first - second) > 0.1 * np.linalg.norm(first)
    once, again = (_update(fixed, digits, seed=11, n=40) for _ in range(2))
    np.testing.assert_array_equal(once, again)
    other_seed = _update(fixed, digits, seed=12, n=40)
    assert not np.array_equal(once, other_seed)

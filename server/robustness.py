"""Robustness testing: the server attacks the global model with FGSM and PGD every N rounds.

Threat model (evasion): an attacker at inference time who knows the global model's weights
(white box) and may change every pixel of a test input by at most epsilon (L-infinity), within
the pixel range [0, 1]. Robust accuracy is the accuracy on the attacked test set; it is reported
beside clean accuracy in ``metrics.jsonl`` as ``robust_accuracy_fgsm`` and
``robust_accuracy_pgd`` (PGD with Madry et al.'s random start is the stronger, standard figure;
FGSM is reported because the gap between the two exposes gradient masking).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray

from common.data.datasets import Dataset
from common.learning.adversarial import fgsm, pgd
from common.robustness_config import RobustnessConfig
from common.schema import Scenario
from common.seeding import derive_rng, derive_seed

ROBUST_KEYS = ("robust_accuracy_fgsm", "robust_accuracy_pgd")


def robust_accuracy(
    model: tf.keras.Model,
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    config: RobustnessConfig,
    *,
    seed: int,
    batch_size: int = 512,
) -> dict[str, float]:
    """Accuracy of ``model`` on FGSM and on PGD examples of ``(x, y)``, batch by batch."""
    generator = tf.random.Generator.from_seed(seed)
    correct = dict.fromkeys(ROBUST_KEYS, 0)
    for start in range(0, len(y), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        attacked = {
            "robust_accuracy_fgsm": fgsm(model, xb, yb, epsilon=config.epsilon),
            "robust_accuracy_pgd": pgd(model, xb, yb, spec=config, generator=generator),
        }
        for key, adversarial in attacked.items():
            predicted = np.argmax(model(adversarial, training=False).numpy(), axis=1)
            correct[key] += int(np.sum(predicted == yb))
    return {key: count / len(y) for key, count in correct.items()}


class RobustnessProbe:
    """Runs :func:`robust_accuracy` on the rounds ``config.every`` selects, and the last one."""

    def __init__(
        self,
        config: RobustnessConfig,
        model: tf.keras.Model,
        dataset: Dataset,
        *,
        seed: int,
        rounds: int,
    ) -> None:
        self.config = config
        self.model = model
        self.seed = seed
        self.rounds = rounds
        # A fixed seeded subset, the same every round, so rounds are comparable.
        order = derive_rng(seed, "robustness-subset").permutation(len(dataset.y_test))
        keep = np.sort(order[: config.num_examples or None])
        self.x, self.y = dataset.x_test[keep], dataset.y_test[keep]

    def due(self, server_round: int) -> bool:
        """Whether ``server_round`` is attacked (every ``every``-th round, round 0 and the last)."""
        every = self.config.every
        return every > 0 and (server_round % every == 0 or server_round == self.rounds)

    def metrics(
        self, server_round: int, weights: Sequence[NDArray[np.float32]]
    ) -> dict[str, float]:
        """The round's robust accuracies (``{}`` when not due; NaN for a non-finite model)."""
        if not self.due(server_round):
            return {}
        if not all(np.isfinite(w).all() for w in weights):
            return dict.fromkeys(ROBUST_KEYS, float("nan"))
        self.model.set_weights(list(weights))
        return robust_accuracy(
            self.model,
            self.x,
            self.y,
            self.config,
            seed=derive_seed(self.seed, "robustness", server_round),
        )


def robustness_probe(
    scenario: Scenario, model: tf.keras.Model, dataset: Dataset
) -> RobustnessProbe | None:
    """The run's probe on the server's evaluation ``model``; None when ``robustness.every = 0``."""
    config = scenario.robustness
    if not config.enabled:
        return None
    return RobustnessProbe(config, model, dataset, seed=scenario.seed, rounds=scenario.rounds)

"""Central mode, the server's seed as the adversary's knowledge: Flower's noise was predictable.

Flower 1.23 adds ``np.random.normal(0, z S / m, shape)`` from NumPy's global generator, which the
server seeds from the scenario seed. Whoever holds the seed replays that draw and subtracts it.
"""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg
from numpy.typing import NDArray

from common.dp_config import DPConfig
from server.privacy_accounting import wrap_central_dp

SIZE, STD = 20_000, 0.5  # z = 1, S = 1, m = 2: std z S / m = 0.5


def _noise(reproducible: bool) -> NDArray[np.float32]:
    config = DPConfig(
        enabled=True,
        mode="central",
        clipping_norm=1.0,
        central_noise_multiplier=1.0,
        reproducible_noise=reproducible,
    )
    wrapped = wrap_central_dp(FedAvg(), config, num_sampled_clients=2)
    np.random.seed(42)  # the server's own seeding of NumPy's global generator
    zeros = ArrayRecord([np.zeros(SIZE, np.float32)])
    noisy: NDArray[np.float32] = wrapped._add_noise_to_aggregated_arrays(zeros).to_numpy_ndarrays()[
        0
    ]
    return noisy


def _predicted() -> NDArray[np.float32]:
    # The adversary replays Flower's draw after the seed it knows.
    np.random.seed(42)
    return np.random.normal(0, STD, SIZE).astype(np.float32)


def test_default_central_noise_cannot_be_replayed_from_numpys_seed() -> None:
    first, second = _noise(reproducible=False), _noise(reproducible=False)
    assert first.std() == pytest.approx(STD, rel=0.03)
    norm = np.linalg.norm(first)
    assert np.linalg.norm(first - _predicted()) > 1.2 * norm  # ~ sqrt(2) x the noise
    assert np.linalg.norm(first - second) > 1.2 * norm  # same seed, other noise


def test_reproducible_central_noise_is_flowers_seeded_draw() -> None:
    config = DPConfig(enabled=True, mode="central", reproducible_noise=True)
    wrapped = wrap_central_dp(FedAvg(), config, num_sampled_clients=2)
    assert type(wrapped) is DifferentialPrivacyServerSideFixedClipping
    np.testing.assert_array_equal(_noise(reproducible=True), _predicted())
    np.testing.assert_array_equal(_noise(reproducible=True), _noise(reproducible=True))

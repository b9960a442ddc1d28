"""Central mode (client-level DP on the server): Flower 1.23's fixed clipping with secret noise.

Flower's ``DifferentialPrivacyServerSideFixedClipping`` clips every reply's delta to the
broadcast weights to L2 norm S, lets the wrapped strategy aggregate, then adds N(0, (z S / m)^2)
to every aggregated array (McMahan et al. 2018, DP-FedAvg with fixed clipping). It draws that
noise with ``np.random.normal`` (``flwr.common.differential_privacy.add_gaussian_noise_inplace``),
i.e. from NumPy's global generator, which the server seeds from the scenario seed
(``tf.keras.utils.set_random_seed`` when it draws the initial weights): anyone holding the seed
could regenerate the noise. :class:`SecretNoiseServerSideFixedClipping` keeps Flower's clipping
and its standard deviation and draws the noise from a generator the caller gives it, seeded from
the operating system's entropy.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord
from flwr.common.differential_privacy import compute_stdv
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, Strategy

from common.dp_config import DPConfig
from common.errors import ConfigError


class SecretNoiseServerSideFixedClipping(DifferentialPrivacyServerSideFixedClipping):
    """Flower's server-side fixed clipping whose Gaussian noise comes from ``rng``."""

    def __init__(self, *args: Any, rng: np.random.Generator, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rng = rng

    def _add_noise_to_aggregated_arrays(self, aggregated_arrays: ArrayRecord) -> ArrayRecord:
        # Overrides Flower 1.23's method of the same name: same std z S / m, another generator.
        stdv = compute_stdv(self.noise_multiplier, self.clipping_norm, self.num_sampled_clients)
        noisy = [
            a + self.rng.normal(0.0, stdv, a.shape).astype(a.dtype)
            for a in aggregated_arrays.to_numpy_ndarrays()
        ]
        keys = aggregated_arrays.keys()
        return ArrayRecord(OrderedDict((k, Array(v)) for k, v in zip(keys, noisy, strict=True)))


def wrap_central_dp(
    strategy: Strategy, config: DPConfig, num_sampled_clients: int
) -> DifferentialPrivacyServerSideFixedClipping:
    """Wrap ``strategy`` in server-side fixed-clipping DP (central mode).

    Clipping norm S = ``config.clipping_norm``, noise N(0, (z * S / m)^2) on every aggregated
    array, z = ``config.central_noise_multiplier``, m = ``num_sampled_clients``. That std is
    calibrated to the UNWEIGHTED mean of the m clipped updates (sensitivity S / m add/remove,
    2 S / m replace-one); example-count weighting or a robust rule changes the sensitivity and
    voids the figures of :func:`server.privacy_accounting.central_epsilon`. Flower refuses a
    round with fewer than m replies. The noise comes from OS entropy
    (:class:`SecretNoiseServerSideFixedClipping`); with ``dp.reproducible_noise`` it is Flower's
    own wrapper, whose noise the scenario seed fixes.
    """
    if not (config.enabled and config.mode == "central"):
        raise ConfigError(
            f"dp.mode: got {config.mode!r} (enabled={config.enabled}); central DP needs "
            'enabled = true and mode = "central"'
        )
    if num_sampled_clients < 1:
        raise ConfigError(f"clients_per_round: got {num_sampled_clients!r}; must be >= 1")
    settings: dict[str, Any] = {
        "noise_multiplier": config.central_noise_multiplier,
        "clipping_norm": config.clipping_norm,
        "num_sampled_clients": num_sampled_clients,
    }
    if config.reproducible_noise:
        return DifferentialPrivacyServerSideFixedClipping(strategy, **settings)
    # default_rng() with no seed: 128 bits from the operating system's entropy.
    return SecretNoiseServerSideFixedClipping(strategy, rng=np.random.default_rng(), **settings)

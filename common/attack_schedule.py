"""Who attacks and when: the malicious set of a run and the rounds an attack is active in.

Both are pure functions of the scenario seed, so every Ray worker and every colluder computes
the same answer without talking to the others.
"""

from __future__ import annotations

import math

from common.errors import ConfigError
from common.seeding import derive_rng


def malicious_count(num_clients: int, amount: int | float) -> int:
    """The number of malicious clients: ``amount`` itself if an int (0 <= amount <=
    num_clients), else ``floor(amount * num_clients)`` for a fraction in [0, 1) (rounded DOWN,
    so 0.25 of 10 clients is 2)."""
    if isinstance(amount, bool):
        raise ConfigError(f"attack.malicious: got {amount!r}; give a count or a fraction")
    if isinstance(amount, int):
        if not 0 <= amount <= num_clients:
            raise ConfigError(
                f"attack.malicious: got {amount}; a count must be in [0, {num_clients}]"
            )
        return amount
    if not 0.0 <= amount < 1.0:
        raise ConfigError(f"attack.malicious: got {amount!r}; a fraction must be in [0, 1)")
    return math.floor(amount * num_clients)


def select_malicious(num_clients: int, amount: int | float, seed: int) -> frozenset[int]:
    """The partition ids of the malicious clients: ``malicious_count`` ids drawn uniformly
    without replacement with the generator ``derive_rng(seed, "malicious")``."""
    if num_clients < 1:
        raise ConfigError(f"data.num_clients: got {num_clients}; must be >= 1")
    count = malicious_count(num_clients, amount)
    rng = derive_rng(seed, "malicious")
    return frozenset(int(i) for i in rng.choice(num_clients, size=count, replace=False))


def is_active(
    server_round: int,
    *,
    start_round: int,
    end_round: int | None,
    probability: float,
    seed: int,
) -> bool:
    """Whether the attack acts in ``server_round``.

    True iff ``start_round <= server_round <= end_round`` (no upper end if None) and a uniform
    draw from ``derive_rng(seed, "attack-active", server_round)`` is ``< probability``. The draw
    depends on the round only, so all colluders agree; probability 1 skips it.
    """
    if not 0.0 < probability <= 1.0:
        raise ConfigError(f"attack.probability: got {probability!r}; must be in (0, 1]")
    if server_round < start_round or (end_round is not None and server_round > end_round):
        return False
    if probability >= 1.0:
        return True
    return bool(derive_rng(seed, "attack-active", server_round).random() < probability)

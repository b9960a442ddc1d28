"""Pseudonymous stable client ids for rules that keep per-client state (FoolsGold).

The aggregation chain never sees partition ids or Flower node ids. A rule that needs to tell
clients apart across rounds gets, with each row, ``pseudonym[p]``: partition p's place in a
permutation of ``range(num_clients)`` drawn from the scenario seed. What that reveals to the
rule (``docs/aggregators.md``, "Client ids"): which rows of different rounds come from the
same client (linkability, which per-client history needs by definition), and nothing of who
the client is: not its partition, its node, its data size or whether it is malicious. The
permutation is derived from the seed, not from a run secret, so a run replays from its seed;
whoever knows the seed (the experimenter, anyone given the scenario file) can invert it, which
in a lab is the point. A deployment that must hide the mapping from the aggregator's operator
would key it with a secret instead (an HMAC of the partition id), at the cost of replay.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from common.seeding import derive_rng


def pseudonyms(seed: int, num_clients: int) -> NDArray[np.int64]:
    """``pseudonyms(seed, n)[p]`` is partition p's pseudonymous id, stable for the whole run."""
    return derive_rng(seed, "pseudonyms").permutation(num_clients).astype(np.int64)

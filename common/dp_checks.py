"""Checks of the ``[dp]`` section that need the clients' shard sizes (run before Ray starts).

* delta >= 1/n for the n records a guarantee protects is refused: the mechanism "publish one
  record in the clear, chosen at random" is (0, 1/n)-DP, so such a delta promises nothing
  (Dwork and Roth 2014, Sec. 2.3, ask for delta well below 1/n). n is an honest client's
  shard size in local mode (the smallest one binds) and the number of clients in central mode.
* Under shuffle sampling an epoch is floor(n / batch) steps, so a shard smaller than the batch
  never trains while its client still reports an epsilon: a loud :class:`DPWarning`.
"""

from __future__ import annotations

import warnings

from common.data.shards import malicious_clients, partitions_of
from common.errors import ConfigError
from common.schema import Scenario


class DPWarning(UserWarning):
    """A DP setting that runs but does not do what its figures suggest."""


def check_dp_shards(scenario: Scenario) -> None:
    """Refuse delta >= 1/n; warn about shards that shuffle sampling cannot train on."""
    dp = scenario.dp
    if not dp.enabled:
        return
    if dp.mode == "central":
        _check_delta(dp.delta, scenario.data.num_clients, "data.num_clients (client-level DP)")
        return
    malicious = malicious_clients(scenario)
    sizes = {
        pid: len(indices)
        for pid, indices in enumerate(partitions_of(scenario))
        if pid not in malicious and len(indices)
    }
    if sizes:
        smallest = min(sizes, key=sizes.__getitem__)
        _check_delta(dp.delta, sizes[smallest], f"the shard of client {smallest}")
    batch = scenario.train.batch_size
    idle = sorted(pid for pid, size in sizes.items() if size < batch)
    if dp.sampling == "shuffle" and idle:
        warnings.warn(
            f'train.batch_size: got {batch}; under dp.sampling = "shuffle" the shards of '
            f"clients {idle} are smaller and never train, yet they report an epsilon: lower the "
            'batch size or use dp.sampling = "poisson"',
            DPWarning,
            stacklevel=2,
        )


def _check_delta(delta: float, records: int, what: str) -> None:
    if delta >= 1 / records:
        raise ConfigError(
            f"dp.delta: got {delta!r}; must be < 1/n = {1 / records:.3g} for n = {records} "
            f"records ({what}): delta >= 1/n allows publishing a record in the clear"
        )

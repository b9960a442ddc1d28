"""The per-round time split of ``metrics.jsonl``: where a round's wall time went.

One round's ``time`` record (seconds)::

    train_max, train_mean   the slowest and the mean client's own local work, as each client
                            timed it (``train-seconds`` in its reply; clients train in parallel,
                            so the slowest one bounds the round)
    attack                  the simulated adversary on the server side (collusion, the wire)
    integrity               the integrity gate, then the watermark and the ledger entry
    aggregate               the aggregation chain (and FLTrust's root update), i.e. the defense
    evaluate                centralised evaluation of the new global model

Client times are claims: a client can lie about them, so they are reported, never used. They
are wall times measured with ``time.perf_counter`` in the process that did the work, so the
split is comparable between defenses on one machine, not between machines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from common.protocol import TrainReply

SERVER_STEPS = ("attack", "integrity", "aggregate")
"""The server-side steps a round always times (zero-cost ones included, so columns line up)."""


class Stopwatch:
    """Seconds spent in named steps; a step timed twice accumulates."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(SERVER_STEPS, 0.0)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the ``with`` block and add it to ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def client_train_split(replies: Sequence[TrainReply]) -> dict[str, float]:
    """``train_max`` and ``train_mean`` over the replies that reported a time (empty if none)."""
    times = [r.train_seconds for r in replies if math.isfinite(r.train_seconds)]
    if not times:
        return {}
    return {"train_max": max(times), "train_mean": sum(times) / len(times)}


def rounded(seconds: dict[str, float]) -> dict[str, float]:
    """Microsecond resolution: finer digits are timer noise and would only bloat the log."""
    return {name: round(value, 6) for name, value in seconds.items()}

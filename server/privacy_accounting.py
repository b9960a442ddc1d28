"""Per-client privacy accounting of DP-SGD over the rounds each client actually trained in.

Local mode (example-level DP, add/remove-one-example adjacency, protects every released
update). A client that took part in rounds r_1 < ... < r_k released k updates; round r ran
``steps`` DP-SGD steps (the empty Poisson batches included) with sampling rate q = b / n and
noise multiplier sigma. Its epsilon composes exactly those events with dp-accounting:

* ``"poisson_rdp"``: RDP accountant over SelfComposed(PoissonSampled(q, Gaussian(sigma')), steps)
  for every round (Abadi et al. 2016; Mironov, Talwar, Zhang 2019). A proven bound for
  ``sampling = "poisson"`` (see :mod:`common.learning.batching`); for ``"shuffle"`` only a
  heuristic.
* ``"shuffle"``: each example is used at most once per epoch, so an epoch is at most one
  Gaussian(sigma') release about it, without any amplification: RDP over
  SelfComposed(Gaussian(sigma'), epochs). Proven for both samplings. This is exactly
  tensorflow-privacy 0.9.0's ``compute_dp_sgd_privacy_statement`` line "Epsilon with each
  example occurring once per epoch" (count = ceil(num_epochs) Gaussian events).

sigma' = sigma when a microbatch holds one example and sigma / 2 otherwise: under add/remove-one
adjacency one example can change a clipped microbatch mean by up to 2C (it shifts which other
examples share its microbatch), as tensorflow-privacy's ``used_microbatching`` assumes
(Ponomareva et al. 2023, "How to DP-fy ML", Sec. 5.6).

Central mode (client-level DP, DP-FedAvg, McMahan et al. 2018): :mod:`server.central_dp` puts
Flower's server-side fixed clipping around the strategy and :func:`central_epsilon` reports
its epsilon under replace-one adjacency (sensitivity 2 S / m, the one that fits a fixed m) and
under add/remove (S / m), labelled.

Cross-check (pinned by tests): n = 1437, b = 32, sigma = 1.1, 10 epochs, delta = 1e-5 gives
2.749 (Poisson RDP, 450 steps) and 16.857 (once per epoch), tensorflow-privacy's own statement.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import dp_accounting
from dp_accounting import rdp

from common.errors import ConfigError
from server.central_dp import wrap_central_dp as wrap_central_dp  # the ServerApp's import

Method = Literal["poisson_rdp", "shuffle"]
METHODS: tuple[Method, ...] = ("poisson_rdp", "shuffle")
Adjacency = Literal["replace_one", "add_remove"]
ADJACENCIES: tuple[Adjacency, ...] = ("replace_one", "add_remove")


@dataclass(frozen=True)
class RoundEvent:
    """What one client's DP-SGD released in one round (the unit the ledger composes)."""

    server_round: int
    steps: int
    epochs: int
    sampling_rate: float
    noise_multiplier: float
    microbatch_size: int

    @property
    def effective_noise_multiplier(self) -> float:
        """sigma' = sigma, or sigma / 2 when microbatches hold more than one example."""
        return self.noise_multiplier / 2 if self.microbatch_size > 1 else self.noise_multiplier


@dataclass(frozen=True)
class ClientPrivacyRow:
    """One line of the final per-client table."""

    partition_id: int
    rounds: int
    local_steps: int
    epsilon_poisson_rdp: float
    epsilon_shuffle: float


class ClientPrivacyLedger:
    """Explicit record of every client's DP events; epsilon is derived from it.

    The ledger holds no accountant state, only events, so a replayed run recomputes the same
    epsilons.
    """

    def __init__(self) -> None:
        self._events: dict[int, list[RoundEvent]] = defaultdict(list)

    def record(
        self,
        partition_id: int,
        *,
        server_round: int,
        steps: int,
        epochs: int,
        sampling_rate: float,
        noise_multiplier: float,
        microbatch_size: int,
    ) -> None:
        """Append the DP event of ``partition_id``'s training in ``server_round``.

        ``steps`` counts every planned DP-SGD step (empty Poisson batches included), ``epochs``
        the local epochs (the once-per-epoch bound's count), ``sampling_rate`` q = b / n.
        Rounds of one client must be recorded in increasing order, each once.
        """
        _check_event(server_round, steps, epochs, sampling_rate, noise_multiplier, microbatch_size)
        events = self._events[partition_id]
        if events and server_round <= events[-1].server_round:
            raise ConfigError(
                f"server_round: got {server_round!r} for partition {partition_id}; must be "
                f"> its last recorded round ({events[-1].server_round})"
            )
        events.append(
            RoundEvent(
                server_round,
                steps,
                epochs,
                float(sampling_rate),
                float(noise_multiplier),
                microbatch_size,
            )
        )

    def partitions(self) -> tuple[int, ...]:
        """Partition ids with at least one recorded round, ascending."""
        return tuple(sorted(pid for pid, events in self._events.items() if events))

    def events(self, partition_id: int) -> tuple[RoundEvent, ...]:
        """The recorded events of ``partition_id`` (empty if it never trained)."""
        return tuple(self._events.get(partition_id, ()))

    def epsilon(self, partition_id: int, delta: float, *, method: Method) -> float:
        """epsilon at ``delta`` of everything ``partition_id`` released so far (0 if nothing)."""
        return composed_epsilon(self.events(partition_id), delta, method=method)

    def summary(self, partition_ids: Iterable[int], *, delta: float) -> dict[str, float]:
        """Max and mean epsilon over ``partition_ids`` (the honest clients), for both methods.

        Keys ``epsilon_<method>_max`` and ``epsilon_<method>_mean``; clients that never trained
        count with epsilon 0. Empty ``partition_ids`` gives 0 everywhere.
        """
        ids = list(partition_ids)
        # Only clients that trained are composed: with 10,000 clients and 100 a round, most
        # never did, and their epsilon is 0 (the cost follows the sampled clients, not all).
        trained = [pid for pid in ids if self._events.get(pid)]
        untrained = [0.0] if len(trained) < len(ids) or not ids else []
        out: dict[str, float] = {}
        for method in METHODS:
            values = [self.epsilon(pid, delta, method=method) for pid in trained] + untrained
            out[f"epsilon_{method}_max"] = max(values)
            out[f"epsilon_{method}_mean"] = math.fsum(values) / max(len(ids), 1)
        return out

    def table(self, *, delta: float) -> list[ClientPrivacyRow]:
        """One row per recorded client: rounds taken part in, local steps, epsilon both ways."""
        return [
            ClientPrivacyRow(
                partition_id=pid,
                rounds=len(self.events(pid)),
                local_steps=sum(event.steps for event in self.events(pid)),
                epsilon_poisson_rdp=self.epsilon(pid, delta, method="poisson_rdp"),
                epsilon_shuffle=self.epsilon(pid, delta, method="shuffle"),
            )
            for pid in self.partitions()
        ]


def format_table(rows: Iterable[ClientPrivacyRow], *, delta: float) -> str:
    """Fixed-width text of :meth:`ClientPrivacyLedger.table` for the run's final report."""
    lines = [
        f"per-client example-level DP at delta={delta:g}",
        f"{'partition':>9} {'rounds':>6} {'steps':>7} {'eps poisson_rdp':>15} {'eps shuffle':>11}",
    ]
    lines += [
        f"{r.partition_id:>9} {r.rounds:>6} {r.local_steps:>7} "
        f"{r.epsilon_poisson_rdp:>15.3f} {r.epsilon_shuffle:>11.3f}"
        for r in rows
    ]
    return "\n".join(lines)


def composed_epsilon(events: Iterable[RoundEvent], delta: float, *, method: Method) -> float:
    """RDP epsilon at ``delta`` of the composition of ``events`` under ``method``."""
    _check_delta(delta)
    # Identical events compose by adding their counts, so cost does not grow with rounds.
    counts: dict[tuple[float, float], int] = defaultdict(int)
    for event in events:
        if method == "poisson_rdp":
            counts[(event.sampling_rate, event.effective_noise_multiplier)] += event.steps
        elif method == "shuffle":
            counts[(1.0, event.effective_noise_multiplier)] += event.epochs
        else:
            raise ConfigError(f"method: got {method!r}; allowed: {', '.join(METHODS)}")
    return _rdp_epsilon(tuple(sorted(counts.items())), delta)


@functools.lru_cache(maxsize=4096)
def _rdp_epsilon(counts: tuple[tuple[tuple[float, float], int], ...], delta: float) -> float:
    # ((q, sigma), count) pairs -> epsilon of composing count x PoissonSampled(q, Gaussian(sigma)).
    # Cached: clients with equal shards and participation share one RDP computation per round.
    accountant = rdp.RdpAccountant()
    for (rate, sigma), count in counts:
        if count == 0:
            continue
        gaussian = dp_accounting.GaussianDpEvent(sigma)
        event = gaussian if rate == 1.0 else dp_accounting.PoissonSampledDpEvent(rate, gaussian)
        accountant.compose(dp_accounting.SelfComposedDpEvent(event, count))
    return float(accountant.get_epsilon(delta))


def central_epsilon(
    *,
    rounds: int,
    clients_per_round: int,
    num_clients: int,
    noise_multiplier: float,
    delta: float,
    adjacency: Adjacency,
) -> float:
    """Client-level epsilon of DP-FedAvg with fixed clipping (McMahan et al. 2018).

    Each round releases the unweighted mean of m = ``clients_per_round`` clipped updates (norm
    <= S) plus N(0, (z S / m)^2), m of N clients sampled without replacement.

    * ``"replace_one"`` (the adjacency of a fixed m: one client's data replaced by another's):
      the mean moves by up to 2 S / m, so each round is a Gaussian with noise multiplier z / 2,
      sampled without replacement (Wang, Balle, Kasiviswanathan 2019):
      SelfComposed(SampledWithoutReplacement(N, m, Gaussian(z / 2)), rounds) under dp-accounting's
      REPLACE_ONE relation. dp_central (z = 1, m = N = 10): 48.80 after 10 rounds, 21.44 after 3.
    * ``"add_remove"`` (sensitivity S / m, as if m did not change when a client is removed):
      SelfComposed(PoissonSampled(m / N, Gaussian(z)), rounds), the customary figure of the
      paper; Flower samples exactly m, not Poisson, so it is an approximation, not a proof.
      dp_central: 19.05 after 10 rounds, 4.73 after 1, 9.01 after 3.
    """
    if not 1 <= clients_per_round <= num_clients:
        raise ConfigError(
            f"clients_per_round: got {clients_per_round!r}; must be in [1, {num_clients}]"
        )
    if rounds < 0:
        raise ConfigError(f"rounds: got {rounds!r}; must be >= 0")
    if noise_multiplier < 0:
        raise ConfigError(f"dp.central_noise_multiplier: got {noise_multiplier!r}; must be >= 0")
    _check_delta(delta)
    if adjacency == "add_remove":
        rate = clients_per_round / num_clients
        return _rdp_epsilon((((rate, noise_multiplier), rounds),), delta)
    if adjacency == "replace_one":
        return _replace_one_epsilon(rounds, clients_per_round, num_clients, noise_multiplier, delta)
    raise ConfigError(f"adjacency: got {adjacency!r}; allowed: {', '.join(ADJACENCIES)}")


@functools.lru_cache(maxsize=256)
def _replace_one_epsilon(
    rounds: int, sample_size: int, population: int, noise_multiplier: float, delta: float
) -> float:
    if rounds == 0:
        return 0.0
    accountant = rdp.RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE
    )
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier / 2)
    event = dp_accounting.SampledWithoutReplacementDpEvent(population, sample_size, gaussian)
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, rounds))
    return float(accountant.get_epsilon(delta))


def _check_event(
    server_round: int,
    steps: int,
    epochs: int,
    sampling_rate: float,
    noise_multiplier: float,
    microbatch_size: int,
) -> None:
    checks = [
        ("server_round", server_round, server_round >= 1, "must be >= 1"),
        ("steps", steps, steps >= 0, "must be >= 0"),
        ("epochs", epochs, epochs >= 0, "must be >= 0"),
        ("sampling_rate", sampling_rate, 0.0 < sampling_rate <= 1.0, "must be in (0, 1]"),
        ("noise_multiplier", noise_multiplier, noise_multiplier >= 0.0, "must be >= 0"),
        ("microbatch_size", microbatch_size, microbatch_size >= 1, "must be >= 1"),
    ]
    for name, value, ok, allowed in checks:
        if not ok:
            raise ConfigError(f"{name}: got {value!r}; {allowed}")


def _check_delta(delta: float) -> None:
    if not 0.0 < delta < 1.0:
        raise ConfigError(f"dp.delta: got {delta!r}; must be in (0, 1)")

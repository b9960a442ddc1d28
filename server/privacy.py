"""Per-round privacy reporting: compose each honest client's DP events as it takes part.

Local mode (DP-SGD on clients): a client's epsilon grows only in rounds it trained in; each event
records its local steps and sampling rate q = batch / its shard size, as reported in its reply.
Central mode (client-level DP on the server): one subsampled Gaussian release per round,
reported under replace-one adjacency (the headline) and add/remove, labelled.

Two marks travel with the figures: ``epsilon_void`` when ``dp.reproducible_noise`` derived the
noise from the seed, and ``train_loss`` null with a reason when DP withholds the clients' loss.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from common.schema import Scenario
from server.privacy_accounting import ADJACENCIES, ClientPrivacyLedger, central_epsilon
from server.round import RoundResult

EPSILON_VOID = (
    "dp.reproducible_noise = true: the DP noise and sampling derive from the scenario seed, so "
    "every epsilon of this run is void against anyone holding the seed (the server first)"
)
TRAIN_LOSS_WITHHELD = (
    "withheld: DP is on and dp.report_train_loss = false (the loss of the private shard is "
    "not covered by the accounted mechanism)"
)


class PrivacyTracker:
    """Feeds the accountant from round reports and formats its figures for the run files."""

    def __init__(self, scenario: Scenario, *, malicious: frozenset[int]) -> None:
        self.scenario = scenario
        self.dp = scenario.dp
        self.honest = [p for p in range(scenario.data.num_clients) if p not in malicious]
        self.ledger = ClientPrivacyLedger()
        self.rounds = 0

    def after_round(self, server_round: int, report: RoundResult) -> dict[str, Any]:
        """Record the round's DP events; return its figures and marks for ``metrics.jsonl``.

        ``epsilon_max`` is the headline the progress line prints: the proven local figure (max
        over honest clients) or the replace-one central figure.
        """
        self.rounds = server_round
        figures: dict[str, Any] = self._marks()
        if not self.dp.report_train_loss:
            figures.update(train_loss=None, train_loss_reason=TRAIN_LOSS_WITHHELD)
        if self.dp.mode == "central":
            central = self._central()
            figures.update(central, epsilon_max=central["epsilon_central_replace_one"])
            return figures
        for reply in report.honest_replies:
            self.ledger.record(
                reply.partition_id,
                server_round=server_round,
                steps=reply.local_steps,
                epochs=self.scenario.train.local_epochs,
                sampling_rate=reply.sampling_rate,
                noise_multiplier=self.dp.noise_multiplier,
                microbatch_size=self.dp.microbatch_size(self.scenario.train.batch_size),
            )
        figures.update(self.ledger.summary(self.honest, delta=self.dp.delta))
        # The proven figure leads the progress line: Poisson RDP only when batches are Poisson.
        figures["epsilon_max"] = figures[f"epsilon_{self._proven()}_max"]
        return figures

    def _marks(self) -> dict[str, Any]:
        return {"epsilon_void": EPSILON_VOID} if self.dp.reproducible_noise else {}

    def _proven(self) -> str:
        return "poisson_rdp" if self.dp.sampling == "poisson" else "shuffle"

    def _central(self) -> dict[str, float]:
        return {
            f"epsilon_central_{adjacency}": central_epsilon(
                rounds=self.rounds,
                clients_per_round=self.scenario.num_sampled,
                num_clients=self.scenario.data.num_clients,
                noise_multiplier=self.dp.central_noise_multiplier,
                delta=self.dp.delta,
                adjacency=adjacency,
            )
            for adjacency in ADJACENCIES
        }

    def summary(self) -> dict[str, Any]:
        """Final epsilons (every accounting, labelled) for ``summary.json``."""
        out: dict[str, Any] = {"mode": self.dp.mode, "delta": self.dp.delta, **self._marks()}
        if self.dp.mode == "central":
            return out | {
                "headline_adjacency": "replace_one",
                **self._central(),
            }
        return out | {
            "sampling": self.dp.sampling,
            "proven_guarantee": self._proven(),
            "clients": [asdict(row) for row in self.ledger.table(delta=self.dp.delta)],
        }

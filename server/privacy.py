"""Per-round privacy reporting: compose each honest client's DP events as it takes part.

Local mode (DP-SGD on clients): a client's epsilon grows only in rounds it trained in; each event
records its local steps and sampling rate q = batch / its shard size, as reported in its reply.
Central mode (client-level DP on the server): one subsampled Gaussian release per round.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from common.schema import Scenario
from server.privacy_accounting import ClientPrivacyLedger, central_epsilon
from server.round import RoundResult


class PrivacyTracker:
    """Feeds the accountant from round reports and formats its figures for the run files."""

    def __init__(self, scenario: Scenario, *, malicious: frozenset[int]) -> None:
        self.scenario = scenario
        self.dp = scenario.dp
        self.honest = [p for p in range(scenario.data.num_clients) if p not in malicious]
        self.ledger = ClientPrivacyLedger()
        self.rounds = 0

    def after_round(self, server_round: int, report: RoundResult) -> dict[str, float]:
        """Record the round's DP events; return the epsilon figures for ``metrics.jsonl``."""
        self.rounds = server_round
        if self.dp.mode == "central":
            return {"epsilon_central": self._central()}
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
        figures = self.ledger.summary(self.honest, delta=self.dp.delta)
        # The proven figure leads the progress line: Poisson RDP only when batches are Poisson.
        proven = "poisson_rdp" if self.dp.sampling == "poisson" else "shuffle"
        figures["epsilon_max"] = figures[f"epsilon_{proven}_max"]
        return figures

    def _central(self) -> float:
        return central_epsilon(
            rounds=self.rounds,
            clients_per_round=self.scenario.num_sampled,
            num_clients=self.scenario.data.num_clients,
            noise_multiplier=self.dp.central_noise_multiplier,
            delta=self.dp.delta,
        )

    def summary(self) -> dict[str, Any]:
        """Final per-client epsilons (both accountings, labelled) for ``summary.json``."""
        if self.dp.mode == "central":
            return {
                "mode": "central",
                "delta": self.dp.delta,
                "epsilon_client_level": self._central(),
            }
        return {
            "mode": "local",
            "delta": self.dp.delta,
            "sampling": self.dp.sampling,
            "proven_guarantee": "poisson_rdp" if self.dp.sampling == "poisson" else "shuffle",
            "clients": [asdict(row) for row in self.ledger.table(delta=self.dp.delta)],
        }
